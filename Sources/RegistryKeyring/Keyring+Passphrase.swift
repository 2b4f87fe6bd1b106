internal import CAnonregLinux
import Foundation
import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// `anonreg keys passphrase` (docs/CRYPTO.md §Passphrase sealing): seals an unsealed keyring, or
/// seals a sealed one under a new passphrase. Every key file is written again, sealed under the
/// new Argon2id-derived key, into a staging directory beside the keys directory, with every
/// other file (the erasure ledger) copied as it is and a manifest that records the new sealing.
/// The staged keyring is loaded with the new passphrase before anything changes; then the two
/// directories are swapped in one step (`renameat2(RENAME_EXCHANGE)`), and the old files are
/// overwritten and removed. A SIGKILL at any moment leaves the keys directory either entirely
/// old or entirely new; what it leaves beside it (`KEYS_DIR.passphrase-*`) is destroyed by the
/// next run.
extension Keyring {
    /// The prefix of the staging directory's name, after the keys directory's own.
    public static let passphraseStagingMarker = ".passphrase-"

    /// What the change did.
    public struct PassphraseChange: Sendable {
        /// Whether the keyring was sealed before.
        public var wasSealed: Bool
        /// Key files sealed under the new passphrase.
        public var keyFiles: Int
        /// Other files carried over unchanged (the erasure ledger).
        public var otherFiles: Int
        /// Leftovers of an interrupted earlier run, destroyed first.
        public var leftoversRemoved: [String]
    }

    /// Seals this keyring (loaded from a keys directory, with its current passphrase if it has
    /// one) under `passphrase`. The daemon must not be running on it: the caller checks.
    public func changingPassphrase(to passphrase: KeyMaterial, strength: PasswordStrength) throws(KeyringError) -> (
        Keyring, PassphraseChange
    ) {
        let directory = source.directory
        let leftovers = try Self.destroyPassphraseLeftovers(of: directory)
        let change = try locked { () throws(KeyringError) -> PassphraseChange in
            let parameters: PasswordKDFParameters
            do throws(CryptoError) { parameters = try PasswordKDFParameters.generate(strength: strength) } catch { throw .crypto(error) }
            let newKey = try Passphrase.sealingKey(passphrase: passphrase, parameters: parameters)
            var next = manifest
            next.sealing = .init(kdf: parameters, check: try Passphrase.makeCheck(sealingKey: newKey))

            let secrets: [(String, Int)] =
                manifest.keks.filter { $0.status != .destroyed }.map { ($0.fileName, XChaCha20Poly1305.keyBytes) }
                + [
                    (KeyFileName.oprfSeed, OPRF.seedBytes), (KeyFileName.index, KDF.masterKeyBytes),
                    (KeyFileName.auditSigning, Ed25519.seedBytes),
                ]
            let staging = directory + Self.passphraseStagingMarker + Hex.encode((try? Sodium.randomBytes(count: 6)) ?? [0])
            try SecureFile.makeDirectory(staging)
            var others = 0
            do throws(KeyringError) {
                for (name, length) in secrets {
                    let key = try KeyFile.read(path: directory + "/" + name, name: name, length: length, sealingKey: sealingKey)
                    try KeyCheck.verify(key, name: name, manifest: manifest, path: directory + "/" + KeyFileName.manifest)
                    try KeyFile.write(key, directory: staging, name: name, sealingKey: newKey, overwrite: false)
                }
                let sealedNames = Set(secrets.map(\.0) + [KeyFileName.manifest])
                for name in try KeyringBackup.fileNames(directory) where !sealedNames.contains(name) {
                    let bytes = try SecureFile.readAll(directory + "/" + name, limit: 1 << 34)
                    try SecureFile.writeAtomically(directory: staging, name: name, overwrite: false) { (fd, path) throws(KeyringError) in
                        try bytes.withUnsafeBytes { buffer in
                            Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
                        }.get()
                    }
                    others += 1
                }
                try next.validate(path: staging + "/" + KeyFileName.manifest)
                try Keyring.writeManifest(next, directory: staging, overwrite: false)
                // Nothing is swapped in that does not load with the new passphrase.
                _ = try Keyring.load(from: KeyringSource(directory: staging), passphrase: passphrase)
                try SecureFile.syncDirectory(staging)
            } catch {
                Self.destroyTree(staging)
                throw error
            }
            guard anonreg_rename_exchange(staging, directory) == 0 else {
                let code = errno
                Self.destroyTree(staging)
                throw .io(path: directory, operation: "swap in the resealed keyring (renameat2 RENAME_EXCHANGE) for", errno: code)
            }
            let parent = (directory as NSString).deletingLastPathComponent
            try SecureFile.syncDirectory(parent.isEmpty ? "." : parent)
            // `staging` now names the old keys: overwrite and remove them.
            Self.destroyTree(staging)
            return PassphraseChange(wasSealed: manifest.sealing != nil, keyFiles: secrets.count, otherFiles: others, leftoversRemoved: [])
        }
        var done = change
        done.leftoversRemoved = leftovers
        return (try Keyring.load(from: KeyringSource(directory: directory), passphrase: passphrase), done)
    }

    /// Overwrites and removes every `KEYS_DIR.passphrase-*` beside `directory`: a run killed
    /// before the swap left the new keys there, one killed after it left the old ones.
    static func destroyPassphraseLeftovers(of directory: String) throws(KeyringError) -> [String] {
        let parent = (directory as NSString).deletingLastPathComponent
        let prefix = (directory as NSString).lastPathComponent + passphraseStagingMarker
        guard let dir = opendir(parent.isEmpty ? "." : parent) else { throw .io(path: parent, operation: "opendir", errno: errno) }
        var found: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasPrefix(prefix) { found.append((parent.isEmpty ? "." : parent) + "/" + name) }
        }
        closedir(dir)
        for path in found { destroyTree(path) }
        return found
    }

    /// Overwrites every file of `path` with zeros, removes it, then the directory.
    static func destroyTree(_ path: String) {
        if let names = try? KeyringBackup.fileNames(path) {
            for name in names { try? SecureFile.overwriteAndRemove(directory: path, name: name) }
        }
        // Temporary files of an interrupted write (".name.tmp-…") go too.
        if let dir = opendir(path) {
            var rest: [String] = []
            while let entry = readdir(dir) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                    String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
                }
                if name != "." && name != ".." { rest.append(name) }
            }
            closedir(dir)
            for name in rest { try? SecureFile.overwriteAndRemove(directory: path, name: name) }
        }
        rmdir(path)
    }
}
