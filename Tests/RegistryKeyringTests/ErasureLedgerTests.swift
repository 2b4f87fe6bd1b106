import AnonregTestSupport
import Foundation
import RegistryCrypto
import Testing

@testable import RegistryKeyring

/// docs/CRYPTO.md §Erasure ledger and §Keyring backups.
struct ErasureLedgerTests {
    static func reference(_ byte: UInt8) -> [UInt8] { [UInt8](repeating: byte, count: ErasureLedger.referenceBytes) }

    @Test func appendsAreMACedAndReadBack() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        #expect(try ledger.references().isEmpty, "an absent ledger is empty")
        try ledger.append([Self.reference(1)])
        try ledger.append([Self.reference(2), Self.reference(3)])
        #expect(try ledger.references() == [Self.reference(1), Self.reference(2), Self.reference(3)])
        let size = try FileManager.default.attributesOfItem(atPath: ledger.path)[.size] as? Int
        #expect(size == ErasureLedger.header.utf8.count + 3 * ErasureLedger.entryBytes)
        var st = stat()
        #expect(stat(ledger.path, &st) == 0 && st.st_mode & 0o777 == 0o600)
    }

    @Test func anAlteredOrForeignLineIsRefused() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        try ledger.append([Self.reference(1)])
        // A line MACed under another keyring's index key (or forged) does not verify.
        let other = try Keyring.create(in: tmp.sub("other"))
        let foreign = try ErasureLedger(keyring: other).lines([Self.reference(9)], after: try ledger.read()!.state).bytes
        let handle = try #require(FileHandle(forWritingAtPath: ledger.path))
        handle.seekToEndOfFile()
        handle.write(Data(foreign))
        try handle.close()
        #expect(throws: KeyringError.self) { try ledger.references() }
        // A flipped hex digit of a reference fails too.
        var text = try String(contentsOfFile: ledger.path, encoding: .utf8)
        text = text.replacingOccurrences(of: Hex.encode(Self.reference(1)), with: Hex.encode(Self.reference(3)))
        try text.write(toFile: ledger.path, atomically: false, encoding: .utf8)
        #expect(throws: KeyringError.self) { try ledger.references() }
    }

    @Test func aTornLastLineIsIgnoredThenCut() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        try ledger.append([Self.reference(1)])
        let torn = Array(try ledger.lines([Self.reference(2)], after: .empty).bytes.prefix(40))
        let handle = try #require(FileHandle(forWritingAtPath: ledger.path))
        handle.seekToEndOfFile()
        handle.write(Data(torn))
        try handle.close()
        #expect(try ledger.references() == [Self.reference(1)])
        try ledger.append([Self.reference(3)])
        #expect(try ledger.references() == [Self.reference(1), Self.reference(3)])
        let size = try FileManager.default.attributesOfItem(atPath: ledger.path)[.size] as? Int
        #expect(size == ErasureLedger.header.utf8.count + 2 * ErasureLedger.entryBytes)
    }

    @Test func keyringBackupRoundTripsAndAWrongPassphraseWritesNothing() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        try ErasureLedger(keyring: keyring).append([Self.reference(5)])
        let made = try KeyringBackup.create(
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("the right passphrase"), strength: .minimumForTests)
        #expect(made.header.files == ["audit-signing.key", "erasure-ledger", "index.key", "kek-1.key", "keyring.json", "oprf-seed.key"])
        // No key file's bytes appear in the backup.
        for name in ["kek-1.key", "index.key", "oprf-seed.key", "audit-signing.key"] {
            let key = Array(try Data(contentsOf: URL(fileURLWithPath: tmp.sub("keys/" + name))).suffix(32))
            #expect(!made.bytes.indices.dropLast(31).contains { Array(made.bytes[$0..<($0 + 32)]) == key }, "\(name)")
        }
        #expect(throws: KeyringError.wrongBackupPassphrase) {
            try KeyringBackup.restore(
                made.bytes, passphrase: try KeyringSealingTests.phrase("wrong"), into: tmp.sub("restored"), force: false)
        }
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("restored")))
        var flipped = made.bytes
        flipped[flipped.count - 20] ^= 1
        #expect(throws: KeyringError.wrongBackupPassphrase) {
            try KeyringBackup.restore(
                flipped, passphrase: try KeyringSealingTests.phrase("the right passphrase"), into: tmp.sub("restored"), force: false)
        }
        _ = try KeyringBackup.restore(
            made.bytes, passphrase: try KeyringSealingTests.phrase("the right passphrase"), into: tmp.sub("restored"), force: false)
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("restored")))
        let same = loaded.primaryKEK.key.bytes.constantTimeEquals(keyring.primaryKEK.key.bytes)
        #expect(same)
        #expect(try ErasureLedger(keyring: loaded).references() == [Self.reference(5)])
    }

    @Test func aForcedRestoreKeepsTheOldKeyringAndMergesItsLedger() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        try ErasureLedger(keyring: keyring).append([Self.reference(1)])
        let made = try KeyringBackup.create(
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("four words for tests"), strength: .minimumForTests)
        // An erasure after the keyring backup.
        try ErasureLedger(keyring: keyring).append([Self.reference(2)])
        #expect(throws: KeyringError.self) {
            try KeyringBackup.restore(
                made.bytes, passphrase: try KeyringSealingTests.phrase("four words for tests"), into: tmp.sub("keys"), force: false)
        }
        let result = try KeyringBackup.restore(
            made.bytes, passphrase: try KeyringSealingTests.phrase("four words for tests"), into: tmp.sub("keys"), force: true)
        let replaced = try #require(result.replaced)
        #expect(FileManager.default.fileExists(atPath: replaced + "/kek-1.key"))
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        #expect(try ErasureLedger(keyring: loaded).references() == [Self.reference(1), Self.reference(2)], "no erasure is forgotten")
    }

    static func append(_ bytes: [UInt8], to path: String) throws {
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(bytes))
        try handle.close()
    }

    static func size(_ path: String) throws -> Int {
        try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int)
    }

    /// More bytes after the last newline than one entry: no torn append leaves that (entries of one
    /// append are separated by newlines), so it is refused and the file left as it is.
    @Test func aLongTailWithoutNewlineIsRefusedAndLeftAlone() throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        try ledger.append([Self.reference(1), Self.reference(2), Self.reference(3)])
        try Self.append([UInt8](repeating: UInt8(ascii: "a"), count: 150), to: ledger.path)
        let before = try Self.size(ledger.path)
        #expect(throws: KeyringError.self) { try ledger.append([Self.reference(4)]) }
        #expect(throws: KeyringError.self) { try ledger.read() }
        #expect(try Self.size(ledger.path) == before)
    }

    /// The review's case: the ledger loses only its final newline (a crash between the write and
    /// the newline, or a copy tool). Today's start cut the file from 123 to 26 bytes, dropping an
    /// acknowledged erasure, and `read()` dropped the entry too. Now the entry is kept and its
    /// newline written back.
    @Test func aLastEntryWithoutItsNewlineIsKeptAndCompleted() throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        try ledger.append([Self.reference(1)])
        let full = try Self.size(ledger.path)
        #expect(full == ErasureLedger.header.utf8.count + ErasureLedger.entryBytes)
        #expect(truncate(ledger.path, off_t(full - 1)) == 0)
        #expect(try ledger.read()?.references == [Self.reference(1)], "reading keeps the entry")
        let state = try ledger.append([])
        #expect(state.count == 1)
        #expect(try Self.size(ledger.path) == full, "the newline is written back, nothing is cut")
        #expect(try ledger.references() == [Self.reference(1)])
    }

    /// A flipped byte in the last line (with or without its newline) fails its MAC: refused, and
    /// the file is left exactly as it was.
    @Test(arguments: [false, true]) func aFlippedByteInTheLastLineIsRefusedAndLeftAlone(dropNewline: Bool) throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        try ledger.append([Self.reference(1), Self.reference(2)])
        var bytes = Array(try Data(contentsOf: URL(fileURLWithPath: ledger.path)))
        let at = bytes.count - 10
        bytes[at] = bytes[at] == UInt8(ascii: "0") ? UInt8(ascii: "1") : UInt8(ascii: "0")
        if dropNewline { bytes.removeLast() }
        try Data(bytes).write(to: URL(fileURLWithPath: ledger.path))
        #expect(throws: KeyringError.self) { try ledger.read() }
        #expect(throws: KeyringError.self) { try ledger.append([]) }
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: ledger.path))) == bytes, "untouched")
    }

    @Test func aCrashDuringTheFirstAppendLeavesAHeaderNotHeaderlessEntries() throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        FileManager.default.createFile(
            atPath: ledger.path, contents: Data(ErasureLedger.header.utf8.prefix(11)), attributes: [.posixPermissions: 0o600])
        #expect(try ledger.references().isEmpty)
        try ledger.append([Self.reference(1)])
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ledger.path))
        #expect(bytes.starts(with: Data(ErasureLedger.header.utf8)))
        #expect(try ledger.references() == [Self.reference(1)])
    }

    @Test func aLedgerTornOffAnEntryBoundaryIsRefusedAndLeftAlone() throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        try ledger.append([Self.reference(1)])
        try Self.append(Array("short line\n".utf8), to: ledger.path)
        let before = try Self.size(ledger.path)
        #expect(throws: KeyringError.self) { try ledger.append([Self.reference(2)]) }
        #expect(try Self.size(ledger.path) == before, "no complete entry is cut away")
        // A foreign header is refused too, not truncated.
        try Data("not a ledger at all, with no newline".utf8).write(to: URL(fileURLWithPath: ledger.path))
        #expect(throws: KeyringError.self) { try ledger.append([Self.reference(2)]) }
        #expect(try Self.size(ledger.path) == 36)
    }

    @Test func removingOrReorderingEntriesBreaksTheChain() throws {
        let tmp = TemporaryDirectory()
        let ledger = ErasureLedger(keyring: try Keyring.create(in: tmp.sub("keys")))
        try ledger.append([Self.reference(1), Self.reference(2), Self.reference(3)])
        let text = try String(contentsOfFile: ledger.path, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        // lines: header, e1, e2, e3, ""
        let removed = [lines[0], lines[1], lines[3], ""].joined(separator: "\n")
        try removed.write(toFile: ledger.path, atomically: false, encoding: .utf8)
        #expect(throws: KeyringError.self) { try ledger.references() }
        lines.swapAt(1, 2)
        try lines.joined(separator: "\n").write(toFile: ledger.path, atomically: false, encoding: .utf8)
        #expect(throws: KeyringError.self) { try ledger.references() }
    }

    @Test func aLedgerMustExtendTheRecordedState() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        #expect(try ledger.verify(extends: .empty).references.isEmpty, "no ledger, no erasure recorded: fine")
        let recorded = try ledger.append([Self.reference(1), Self.reference(2), Self.reference(3)])
        try ledger.append([Self.reference(4)])
        #expect(try ledger.verify(extends: recorded).references.count == 4, "a longer ledger extends it")
        // Cut back to two entries: every remaining MAC is fine, but the recorded state is not reached.
        let bytes = try Data(contentsOf: URL(fileURLWithPath: ledger.path))
        try bytes.prefix(ErasureLedger.header.utf8.count + 2 * ErasureLedger.entryBytes).write(to: URL(fileURLWithPath: ledger.path))
        #expect(try ledger.references().count == 2)
        #expect(throws: KeyringError.self) { try ledger.verify(extends: recorded) }
        // A ledger rebuilt with other entries, as long, does not carry the recorded head.
        unlink(ledger.path)
        try ledger.append([Self.reference(7), Self.reference(8), Self.reference(9)])
        #expect(throws: KeyringError.self) { try ledger.verify(extends: recorded) }
        // A missing ledger is refused once the database recorded an erasure.
        unlink(ledger.path)
        #expect(throws: KeyringError.self) { try ledger.verify(extends: recorded) }
    }

    @Test func aForcedRestoreMergesAroundTheStagedTornTailAndKeepsTheCurrentChain() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        try ledger.append([Self.reference(1), Self.reference(3)])
        // The backup catches a torn tail (a crash mid-append).
        try Self.append(Array(try ledger.lines([Self.reference(5)], after: .empty).bytes.prefix(30)), to: ledger.path)
        let made = try KeyringBackup.create(
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("four words for tests"), strength: .minimumForTests)
        // The current ledger went another way after entry 1 (say, restored from elsewhere).
        unlink(ledger.path)
        try ledger.append([Self.reference(1)])
        let recorded = try ledger.append([Self.reference(2)])
        _ = try KeyringBackup.restore(
            made.bytes, passphrase: try KeyringSealingTests.phrase("four words for tests"), into: tmp.sub("keys"), force: true)
        let merged = ErasureLedger(keyring: try Keyring.load(from: KeyringSource(directory: tmp.sub("keys"))))
        let contents = try merged.verify(extends: recorded)
        #expect(
            contents.references == [1, 2, 3].map { Self.reference($0) },
            "every entry kept, in the current chain, nothing glued to the fragment")
    }

    @Test func aForcedRestoreRefusesAMalformedCurrentLedgerRatherThanDropIt() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let ledger = ErasureLedger(keyring: keyring)
        try ledger.append([Self.reference(1)])
        let made = try KeyringBackup.create(
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("four words for tests"), strength: .minimumForTests)
        try ledger.append([Self.reference(2)])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: ledger.path))
        bytes[0] = UInt8(ascii: "A")
        try bytes.write(to: URL(fileURLWithPath: ledger.path))
        #expect(throws: KeyringError.self) {
            try KeyringBackup.restore(
                made.bytes, passphrase: try KeyringSealingTests.phrase("four words for tests"), into: tmp.sub("keys"), force: true)
        }
        #expect(FileManager.default.fileExists(atPath: tmp.sub("keys/keyring.json")), "the current keyring is left in place")
        #expect(try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains(".restore-") }.isEmpty)
    }
}
