import AnonregTestSupport
import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import Testing

@testable import RegistryStore

/// The keys directory holds only anonreg's files (docs/CRYPTO.md §Keyring), and the store is one
/// of the writers: it leaves the schema mark at every open and the audit anchor at every
/// checkpoint. A registry that has run once must load its keyring again, open again and be backed
/// up; only a file that is not anonreg's is refused.
struct KeysDirectoryStoreTests {
    @Test func aKeysDirectoryTheStoreHasWrittenIntoLoadsAgain() async throws {
        let tmp = TemporaryDirectory()
        let keys = tmp.sub("keys")
        let store = try SQLiteRegistryStore(
            path: tmp.sub("registry.sqlite"), keyring: try Keyring.create(in: keys), auditCheckpointEvery: 10)
        for _ in 0..<12 {
            try await store.appendAudit(AuditEvent(actor: "clinic a", action: "read-status", result: "ok", subjectReference: nil))
        }
        #expect(try SchemaMark.read(directory: keys) != nil)
        #expect(try AuditAnchor.read(directory: keys)?.seq == 10)

        // The next start: the keyring loads, the store opens on it, `keys backup` copies it all.
        let keyring = try Keyring.load(from: KeyringSource(directory: keys))
        _ = try SQLiteRegistryStore(path: tmp.sub("registry.sqlite"), keyring: keyring, auditCheckpointEvery: 10)
        let phrase = Array("a backup passphrase for the test".utf8)
        let passphrase = KeyMaterial(try SecretBytes(count: phrase.count) { $0.copyBytes(from: phrase) }, name: "passphrase")
        let backup = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: .minimumForTests)
        #expect(backup.header.files.contains(SchemaMark.fileName) && backup.header.files.contains(AuditAnchor.fileName))

        // A stray file beside them is refused by name, and the store is not opened on it.
        tmp.write([1], to: keys + "/schema-mark.orig")
        #expect(throws: KeyringError.unexpectedFiles(directory: keys, entries: ["schema-mark.orig (not an anonreg file, mode 600)"])) {
            _ = try Keyring.load(from: KeyringSource(directory: keys))
        }
    }
}
