internal import CAnonregLinux
import Foundation
import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// A passphrase-sealed copy of a whole keys directory (docs/CRYPTO.md §Keyring backups):
///
///     "ANRGKBK1" ‖ BE32(n) ‖ header (n bytes of JSON: format, createdAt, kdf, files)
///               ‖ nonce(24) ‖ ciphertext ‖ tag(16)
///     key       = crypto_kdf subkey 1 of Argon2id(passphrase, header.kdf) under "ANRGkbak"
///     ad        = "anonreg/v1/keyring-backup" ‖ 0x00 ‖ "ANRGKBK1" ‖ header
///     plaintext = for each file, by name: BE16(len name) ‖ name ‖ BE32(len content) ‖ content
///
/// Files are copied as they are (a sealed keyring stays sealed inside). The plaintext lives only
/// in secure memory.
public enum KeyringBackup {
    public static let magic = Array("ANRGKBK1".utf8)
    public static let format = 1

    public struct Header: Codable, Sendable, Equatable {
        public var format: Int
        public var createdAt: String
        public var kdf: PasswordKDFParameters
        public var files: [String]
    }

    /// The sealed backup of `directory`, read under a shared lock so a concurrent rotation is not
    /// copied half-way.
    public static func create(
        directory: String, passphrase: KeyMaterial, strength: PasswordStrength = .moderate, now: Date = Date()
    ) throws(KeyringError) -> (bytes: [UInt8], header: Header) {
        try Passphrase.checkStrength(passphrase)
        try SecureFile.checkDirectory(directory)
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard dfd >= 0 else { throw .io(path: directory, operation: "open", errno: errno) }
        defer { close(dfd) }
        while flock(dfd, LOCK_SH) != 0 {
            guard errno == EINTR else { throw .io(path: directory, operation: "lock", errno: errno) }
        }
        defer { flock(dfd, LOCK_UN) }
        // Only anonreg's regular files are copied; anything else is named and refused (a FIFO
        // would hang the read, a stray file would ride along into every restore).
        try KeyringDirectory.check(directory)
        let names = try fileNames(directory)
        guard names.contains(KeyFileName.manifest) else { throw .notFound(path: directory + "/" + KeyFileName.manifest) }
        var opened: [(name: String, fd: Int32, size: Int)] = []
        defer { for file in opened { close(file.fd) } }
        for name in names {
            let (fd, size) = try SecureFile.openForReading(directory + "/" + name)
            opened.append((name, fd, size))
            if name == ErasureLedger.fileName {
                // The daemon appends under LOCK_EX: with LOCK_SH held no line is half-written
                // (the lock goes with the descriptor, closed below). The size is read again under it.
                while flock(fd, LOCK_SH) != 0 {
                    guard errno == EINTR else { throw .io(path: directory + "/" + name, operation: "lock", errno: errno) }
                }
                var st = stat()
                guard fstat(fd, &st) == 0 else { throw .io(path: directory + "/" + name, operation: "stat", errno: errno) }
                opened[opened.count - 1].size = Int(st.st_size)
            }
        }
        let total = opened.reduce(0) { $0 + 2 + $1.name.utf8.count + 4 + $1.size }
        let plaintext: SecretBytes
        do {
            plaintext = try SecretBytes(count: total) { (buffer) throws(CryptoError) in
                var at = 0
                for file in opened {
                    let name = Array(file.name.utf8)
                    for byte in bigEndian(UInt16(name.count)) + name + bigEndian(UInt32(file.size)) {
                        buffer[at] = byte
                        at += 1
                    }
                    let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[at..<(at + file.size)])
                    guard (try? SecureFile.readExactly(fd: file.fd, into: slice, path: file.name)) != nil else {
                        throw CryptoError.invalidLength(what: file.name, expected: file.size, actual: 0)
                    }
                    at += file.size
                }
            }
        } catch { throw .io(path: directory, operation: "read", errno: EIO) }
        let kdf: PasswordKDFParameters
        do { kdf = try PasswordKDFParameters.generate(strength: strength) } catch { throw .crypto(error) }
        let header = Header(format: format, createdAt: ISO8601DateFormatter().string(from: now), kdf: kdf, files: names)
        let json = try encode(header)
        let key = try sealingKey(passphrase: passphrase, kdf: kdf)
        do {
            let sealed = try XChaCha20Poly1305.seal(secret: plaintext, associatedData: associatedData(json), key: key.bytes)
            return (magic + bigEndian(UInt32(json.count)) + json + sealed, header)
        } catch { throw .crypto(error) }
    }

    /// Opens a backup and writes its files as the keys directory `directory`. Nothing is written
    /// unless the passphrase opens it. An existing keyring is refused unless `force`; then it is
    /// kept beside, renamed `DIR.replaced-TIME`, and its erasure ledger's entries are carried
    /// over into the restored one (a ledger never loses an entry).
    ///
    /// `keyringPassphrase` unlocks a passphrase-sealed keyring in the backup when an existing
    /// ledger must be merged (its MACs are checked with the restored keyring's ledger key).
    public static func restore(
        _ bytes: [UInt8], passphrase: KeyMaterial, into directory: String, force: Bool, keyringPassphrase: KeyMaterial? = nil,
        now: Date = Date()
    ) throws(KeyringError) -> (header: Header, replaced: String?) {
        let (header, json, sealed) = try parse(bytes)
        let hasKeyring = SecureFile.exists(directory + "/" + KeyFileName.manifest)
        if hasKeyring && !force { throw .alreadyExists(path: directory) }
        let key = try sealingKey(passphrase: passphrase, kdf: header.kdf)
        let plaintext = try openSealed(sealed, json: json, key: key)
        // Parse the file table before writing anything.
        var entries: [(name: String, range: Range<Int>)] = []
        try plaintext.withUnsafeBytes { (all) throws(KeyringError) in
            var at = 0
            while at < all.count {
                guard at + 2 <= all.count else { throw .malformedBackup(reason: "truncated file table") }
                let nameLength = Int(all[at]) << 8 | Int(all[at + 1])
                at += 2
                guard at + nameLength + 4 <= all.count else { throw .malformedBackup(reason: "truncated file table") }
                let name = String(decoding: UnsafeRawBufferPointer(rebasing: all[at..<(at + nameLength)]), as: UTF8.self)
                at += nameLength
                let size = (0..<4).reduce(0) { $0 << 8 | Int(all[at + $1]) }
                at += 4
                guard at + size <= all.count else { throw .malformedBackup(reason: "truncated file \(name)") }
                guard !name.isEmpty, !name.contains("/"), !name.hasPrefix("."), name.utf8.count <= 255 else {
                    throw .malformedBackup(reason: "unsafe file name")
                }
                entries.append((name, at..<(at + size)))
                at += size
            }
        }
        guard entries.map(\.name) == header.files else { throw .malformedBackup(reason: "the file table does not match the header") }

        let parent = (directory as NSString).deletingLastPathComponent
        let suffix = Hex.encode((try? Sodium.randomBytes(count: 6)) ?? [0])
        let staging = directory + ".restore-" + suffix
        try SecureFile.makeDirectory(staging)
        do throws(KeyringError) {
            for entry in entries {
                try SecureFile.writeAtomically(directory: staging, name: entry.name, overwrite: false) { (fd, path) throws(KeyringError) in
                    try plaintext.withUnsafeBytes { (all) throws(KeyringError) in
                        try SecureFile.writeAll(fd: fd, UnsafeRawBufferPointer(rebasing: all[entry.range]), path: path)
                    }
                }
            }
            if SecureFile.exists(directory + "/" + ErasureLedger.fileName) {
                let keyring = try Keyring.load(from: KeyringSource(directory: staging), passphrase: keyringPassphrase)
                try carryOverLedger(from: directory, into: staging, keyring: keyring)
            }
            try carryOverAnchor(from: directory, into: staging)
            try carryOverSchemaMark(from: directory, into: staging)
        } catch {
            removeTree(staging)
            throw error
        }
        TestStop.at("keyring-restore-staged")
        // The keys directory is swapped, never emptied: with RENAME_EXCHANGE the staged keyring
        // and the existing directory trade places in one step, so at every moment the keys
        // directory is either the old keyring or the complete new one, whatever kills the
        // restore (docs/OPERATIONS.md §Keyring backups). The old one then moves to its
        // `.replaced-TIME` name (or, when it was an empty directory, is removed).
        var replaced: String? = nil
        if SecureFile.exists(directory) {
            let wasEmpty = SecureFile.isEmptyDirectory(directory)
            guard anonreg_rename_exchange(staging, directory) == 0 else {
                let code = errno
                removeTree(staging)
                throw .io(path: directory, operation: "swap in the restored keyring at", errno: code)
            }
            try SecureFile.syncDirectory(parent.isEmpty ? "." : parent)
            TestStop.at("keyring-restore-swapped")
            if wasEmpty {
                rmdir(staging)
            } else {
                let stamp = ISO8601DateFormatter().string(from: now).replacingOccurrences(of: ":", with: "")
                replaced = directory + ".replaced-" + stamp
                guard rename(staging, replaced!) == 0 else {
                    let code = errno
                    throw .io(path: staging, operation: "keep the replaced keyring (it is at \(staging)); rename", errno: code)
                }
            }
        } else {
            guard rename(staging, directory) == 0 else {
                let code = errno
                removeTree(staging)
                throw .io(path: directory, operation: "rename \(staging) to", errno: code)
            }
        }
        try SecureFile.syncDirectory(parent.isEmpty ? "." : parent)
        return (header, replaced)
    }

    /// Directories a restore killed part-way left beside `directory` (`KEYS.restore-…`): a staged
    /// keyring that never took effect, or, killed right after the swap, the keyring it replaced.
    /// Both hold keys; restore names them so the admin can check and remove them.
    public static func interruptedRestores(of directory: String) -> [String] {
        let parent = (directory as NSString).deletingLastPathComponent
        let base = (directory as NSString).lastPathComponent + ".restore-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: parent.isEmpty ? "." : parent) else { return [] }
        return names.filter { $0.hasPrefix(base) }.sorted().map { (parent.isEmpty ? "" : parent + "/") + $0 }
    }

    /// Reads the header only (no passphrase needed).
    public static func parse(_ bytes: [UInt8]) throws(KeyringError) -> (Header, [UInt8], [UInt8]) {
        guard bytes.count > magic.count + 4, Array(bytes.prefix(magic.count)) == magic else {
            throw .malformedBackup(reason: "it is not an anonreg keyring backup (no ANRGKBK1 magic)")
        }
        let n = bytes[magic.count..<(magic.count + 4)].reduce(0) { $0 << 8 | Int($1) }
        let start = magic.count + 4
        guard n > 0, start + n < bytes.count else { throw .malformedBackup(reason: "its header length is implausible") }
        let json = Array(bytes[start..<(start + n)])
        guard let header = try? JSONDecoder().decode(Header.self, from: Data(json)) else {
            throw .malformedBackup(reason: "its header is not valid JSON")
        }
        guard header.format == format else { throw .malformedBackup(reason: "it is format \(header.format); this anonreg reads \(format)") }
        return (header, json, Array(bytes[(start + n)...]))
    }

    static func openSealed(_ sealed: [UInt8], json: [UInt8], key: KeyMaterial) throws(KeyringError) -> SecretBytes {
        do { return try XChaCha20Poly1305.openSecret(sealed, associatedData: associatedData(json), key: key.bytes) } catch {
            throw .wrongBackupPassphrase
        }
    }

    static func associatedData(_ json: [UInt8]) -> [UInt8] { Label.bytes(Label.keyringBackup) + [0] + magic + json }

    static func sealingKey(passphrase: KeyMaterial, kdf: PasswordKDFParameters) throws(KeyringError) -> KeyMaterial {
        do {
            let master = try PasswordKey.derive(passphrase: passphrase.bytes, parameters: kdf, length: KDF.masterKeyBytes)
            return KeyMaterial(
                try KDF.deriveSubkey(from: master, id: 1, context: .keyringBackup, length: XChaCha20Poly1305.keyBytes),
                name: "keyring backup key")
        } catch { throw .crypto(error) }
    }

    static func encode(_ header: Header) throws(KeyringError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(header) else { throw .malformedBackup(reason: "could not encode the header") }
        return Array(data)
    }

    /// Regular files of the directory, by name; temporary files (".name.tmp-…") are skipped.
    static func fileNames(_ directory: String) throws(KeyringError) -> [String] {
        guard let dir = opendir(directory) else { throw .io(path: directory, operation: "opendir", errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(".") { continue }
            names.append(name)
        }
        return names.sorted()
    }

    /// Merges the existing ledger of `existing` (the keys directory being replaced) with the
    /// staged one from the backup. The result starts with the existing ledger, byte for byte up
    /// to its last complete entry (the database records that chain's head), followed by every
    /// reference the staged ledger holds that it lacks, appended through `ErasureLedger.append`.
    /// Both ledgers are read through the MAC-checking API: a malformed one is refused, never
    /// skipped, since a skipped entry is a subject a later restore would bring back.
    static func carryOverLedger(from existing: String, into staging: String, keyring: Keyring) throws(KeyringError) {
        let current = ErasureLedger(directory: existing, keyring: keyring)
        let staged = ErasureLedger(directory: staging, keyring: keyring)
        // Cut the staged ledger's torn tail (and check its header) before reading it.
        if SecureFile.exists(staged.path) { try staged.append([]) }
        let stagedReferences = try staged.read()?.references ?? []
        guard let currentContents = try current.read() else { return }
        let header = Array(ErasureLedger.header.utf8)
        let complete = header.count + currentContents.references.count * ErasureLedger.entryBytes
        let currentBytes = Array(try SecureFile.readAll(current.path, limit: 1 << 34).prefix(complete))
        try SecureFile.writeAtomically(directory: staging, name: ErasureLedger.fileName, overwrite: true) {
            (fd, path) throws(KeyringError) in
            try currentBytes.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
        }
        let have = Set(currentContents.references)
        var seen = Set<[UInt8]>()
        let missing = stagedReferences.filter { !have.contains($0) && seen.insert($0).inserted }
        try staged.append(missing)
    }

    /// Keeps the newer audit anchor (docs/CRYPTO.md §Audit, "Anchor"): restoring an older keyring
    /// backup must not move the anchor back, or an older copy of the database would pass as
    /// current.
    static func carryOverAnchor(from existing: String, into staging: String) throws(KeyringError) {
        guard let current = try? AuditAnchor.read(directory: existing) else { return }
        let staged = try? AuditAnchor.read(directory: staging)
        if let staged, staged.seq >= current.seq { return }
        unlink(staging + "/" + AuditAnchor.fileName)
        try current.write(directory: staging)
    }

    /// Keeps the further schema mark (docs/CRYPTO.md §Authenticated columns, "Migrations"):
    /// restoring an older keyring backup must not move the mark back, or a database rolled back
    /// behind migrations it had reached would open again. Migrations only ever append, so the
    /// further mark holds every migration of the other; two marks that diverged are joined. An
    /// existing mark that cannot be read refuses the restore, as it refuses a daemon start.
    static func carryOverSchemaMark(from existing: String, into staging: String) throws(KeyringError) {
        guard let current = try SchemaMark.read(directory: existing) else { return }
        let staged = try? SchemaMark.read(directory: staging)
        let missing = current.missing(from: staged?.migrations ?? [])
        if missing.isEmpty { return }
        unlink(staging + "/" + SchemaMark.fileName)
        try SchemaMark(migrations: (staged?.migrations ?? []) + missing).write(directory: staging)
    }

    static func removeTree(_ path: String) {
        if let names = try? fileNames(path) { for name in names { unlink(path + "/" + name) } }
        rmdir(path)
    }

    static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
}
