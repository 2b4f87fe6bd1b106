import Foundation
import Testing
import AnonregTestSupport
import RegistryCrypto
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
        let foreign = try ErasureLedger(keyring: other).line(Self.reference(9))
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
        let torn = Array(try ledger.line(Self.reference(2)).prefix(40))
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
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("right"), strength: .minimumForTests)
        #expect(made.header.files == ["audit-signing.key", "erasure-ledger", "index.key", "kek-1.key", "keyring.json", "oprf-seed.key"])
        // No key file's bytes appear in the backup.
        for name in ["kek-1.key", "index.key", "oprf-seed.key", "audit-signing.key"] {
            let key = Array(try Data(contentsOf: URL(fileURLWithPath: tmp.sub("keys/" + name))).suffix(32))
            #expect(!made.bytes.indices.dropLast(31).contains { Array(made.bytes[$0..<($0 + 32)]) == key }, "\(name)")
        }
        #expect(throws: KeyringError.wrongBackupPassphrase) {
            try KeyringBackup.restore(made.bytes, passphrase: try KeyringSealingTests.phrase("wrong"), into: tmp.sub("restored"), force: false)
        }
        #expect(!FileManager.default.fileExists(atPath: tmp.sub("restored")))
        var flipped = made.bytes
        flipped[flipped.count - 20] ^= 1
        #expect(throws: KeyringError.wrongBackupPassphrase) {
            try KeyringBackup.restore(flipped, passphrase: try KeyringSealingTests.phrase("right"), into: tmp.sub("restored"), force: false)
        }
        _ = try KeyringBackup.restore(made.bytes, passphrase: try KeyringSealingTests.phrase("right"), into: tmp.sub("restored"), force: false)
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
            directory: tmp.sub("keys"), passphrase: try KeyringSealingTests.phrase("pw"), strength: .minimumForTests)
        // An erasure after the keyring backup.
        try ErasureLedger(keyring: keyring).append([Self.reference(2)])
        #expect(throws: KeyringError.self) {
            try KeyringBackup.restore(made.bytes, passphrase: try KeyringSealingTests.phrase("pw"), into: tmp.sub("keys"), force: false)
        }
        let result = try KeyringBackup.restore(made.bytes, passphrase: try KeyringSealingTests.phrase("pw"), into: tmp.sub("keys"), force: true)
        let replaced = try #require(result.replaced)
        #expect(FileManager.default.fileExists(atPath: replaced + "/kek-1.key"))
        let loaded = try Keyring.load(from: KeyringSource(directory: tmp.sub("keys")))
        #expect(try ErasureLedger(keyring: loaded).references() == [Self.reference(1), Self.reference(2)], "no erasure is forgotten")
    }
}
