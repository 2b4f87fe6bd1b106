import AnonregTestSupport
import Dispatch
import Foundation
import Testing

@testable import RegistryKeyring

/// Issue 21 §3: a FIFO in place of a key file hung the daemon at start and `keys backup`; an
/// unknown 0644 file in keys/ was accepted silently. Each is now refused, naming the entry.
struct KeysDirectoryTests {
    /// Runs `body` on its own thread; if it is still running after `seconds` (blocked in open(2)
    /// on a FIFO), `unblock` is called to release it and the test records a hang.
    static func withinTimeout(_ seconds: Double, unblock: @escaping () -> Void, _ body: @escaping @Sendable () -> Void) {
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            body()
            done.signal()
        }
        if done.wait(timeout: .now() + seconds) == .timedOut {
            Issue.record("blocked for more than \(seconds) s (a FIFO was opened without O_NONBLOCK)")
            unblock()
            _ = done.wait(timeout: .now() + 10)
        }
    }

    /// Opens the FIFO for writing and closes it again: a reader blocked in open(2) returns.
    static func release(_ fifo: String) -> () -> Void {
        {
            let fd = open(fifo, O_WRONLY | O_NONBLOCK)
            if fd >= 0 { close(fd) }
        }
    }

    @Test func aFIFOInPlaceOfAKeyFileIsRefusedNotWaitedOn() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let fifo = tmp.sub("keys/kek-1.key")
        unlink(fifo)
        #expect(mkfifo(fifo, 0o600) == 0)
        nonisolated(unsafe) var outcome: Result<Keyring, KeyringError>?
        let keys = tmp.sub("keys")
        Self.withinTimeout(10, unblock: Self.release(fifo)) {
            outcome = Result { () throws(KeyringError) in try Keyring.load(from: KeyringSource(directory: keys)) }
        }
        guard case .failure(let error) = outcome else {
            Issue.record("a FIFO key file was accepted")
            return
        }
        #expect(error == .unexpectedFiles(directory: keys, entries: ["kek-1.key (a FIFO)"]))
        // Opened directly, it is refused as not a regular file, at once.
        nonisolated(unsafe) var direct: KeyringError?
        Self.withinTimeout(10, unblock: Self.release(fifo)) {
            do { _ = try SecureFile.readAll(fifo) } catch { direct = error as? KeyringError }
        }
        #expect(direct == .notARegularFile(path: fifo))
    }

    @Test func aFIFOAnywhereInKeysIsRefusedByTheBackup() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let fifo = tmp.sub("keys/zz-pipe")
        #expect(mkfifo(fifo, 0o600) == 0)
        let keys = tmp.sub("keys")
        nonisolated(unsafe) var outcome: KeyringError?
        Self.withinTimeout(10, unblock: Self.release(fifo)) {
            do {
                _ = try KeyringBackup.create(
                    directory: keys, passphrase: try KeyringSealingTests.phrase("a backup passphrase"), strength: .minimumForTests)
            } catch { outcome = error as? KeyringError }
        }
        #expect(outcome == .unexpectedFiles(directory: keys, entries: ["zz-pipe (a FIFO)"]))
    }

    @Test func unknownFilesAreRefusedByNameAndLeftoversTolerated() throws {
        let tmp = TemporaryDirectory()
        _ = try Keyring.create(in: tmp.sub("keys"))
        let keys = tmp.sub("keys")
        // What an interrupted atomic write leaves, and a KEK a crashed rotation wrote: anonreg's own.
        tmp.write([1, 2, 3], to: keys + "/.kek-2.key.tmp-0a1b2c")
        tmp.write([1, 2, 3], to: keys + "/kek-7.key")
        _ = try Keyring.load(from: KeyringSource(directory: keys))
        // A copy an admin left there, world-readable, and a directory.
        FileManager.default.createFile(atPath: keys + "/index.key.bak", contents: Data([1]), attributes: [.posixPermissions: 0o644])
        mkdir(keys + "/old", 0o700)
        #expect(
            throws: KeyringError.unexpectedFiles(
                directory: keys,
                entries: [
                    "index.key.bak (not an anonreg file, mode 644)", "old (a directory)",
                ])
        ) {
            _ = try Keyring.load(from: KeyringSource(directory: keys))
        }
        #expect(KeyringError.unexpectedFiles(directory: keys, entries: ["old (a directory)"]).description.contains("move the others out"))
        #expect(
            KeyringDirectory.isKnown("audit-anchor") && KeyringDirectory.isKnown("erasure-ledger") && KeyringDirectory.isKnown("kek-12.key")
        )
        #expect(
            !KeyringDirectory.isKnown("kek-01.key") && !KeyringDirectory.isKnown("kek-.key") && !KeyringDirectory.isKnown("kek-1.key.bak"))
    }

    /// The store writes two files of its own beside the keys (docs/CRYPTO.md §Keyring): the audit
    /// anchor and the schema mark, each through a temporary file renamed into place. A keys
    /// directory holding them, and what an interrupted write of either leaves, loads and is backed
    /// up; a stray file named like them is still refused by name.
    @Test func theAuditAnchorAndSchemaMarkAreOursAndLookalikesAreNot() throws {
        let tmp = TemporaryDirectory()
        let keys = tmp.sub("keys")
        _ = try Keyring.create(in: keys)
        try AuditAnchor(
            seq: 20, hash: [UInt8](repeating: 7, count: 32), at: "2026-12-05T14:00:00Z", previous: 10, interval: 10,
            signature: [UInt8](repeating: 9, count: 64)
        ).write(directory: keys)
        try SchemaMark(migrations: ["v1-subjects-cases-records", "v4-row-macs"]).write(directory: keys)
        tmp.write([1, 2, 3], to: keys + "/.audit-anchor.tmp-0a1b2c")
        tmp.write([1, 2, 3], to: keys + "/.schema-mark.tmp-d4e5f6")
        #expect(try KeyringDirectory.strangers(in: keys) == [])
        _ = try Keyring.load(from: KeyringSource(directory: keys))
        let backup = try KeyringBackup.create(
            directory: keys, passphrase: try KeyringSealingTests.phrase("a backup passphrase"), strength: .minimumForTests)
        #expect(backup.header.files.contains("audit-anchor") && backup.header.files.contains("schema-mark"))

        // Copies an admin left beside them, and a temporary name that no write of ours makes.
        tmp.write([1], to: keys + "/schema-mark.old")
        tmp.write([1], to: keys + "/audit-anchor.bak")
        tmp.write([1], to: keys + "/.schema-mark.tmp-not-hex")
        #expect(
            throws: KeyringError.unexpectedFiles(
                directory: keys,
                entries: [
                    ".schema-mark.tmp-not-hex (not an anonreg file, mode 600)",
                    "audit-anchor.bak (not an anonreg file, mode 600)",
                    "schema-mark.old (not an anonreg file, mode 600)",
                ])
        ) {
            _ = try Keyring.load(from: KeyringSource(directory: keys))
        }
    }

    /// A forced restore of an older keyring backup keeps the schema mark the registry had
    /// reached, as it keeps the newer audit anchor. Otherwise a database writer who rolled the
    /// schema back (dropping the MAC columns and the `v4-row-macs` record) would get past the mark
    /// by waiting for the admin to restore an older keyring.
    @Test func aForcedRestoreOfAnOlderKeyringKeepsTheFurtherSchemaMark() throws {
        let tmp = TemporaryDirectory()
        let keys = tmp.sub("keys")
        _ = try Keyring.create(in: keys)
        let older = ["v1-subjects-cases-records"]
        let further = older + ["v4-row-macs", "v4-keyring-binding"]
        try SchemaMark(migrations: older).write(directory: keys)
        let passphrase = try KeyringSealingTests.phrase("a backup passphrase")
        let backup = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: .minimumForTests)
        try SchemaMark(migrations: further).write(directory: keys)

        _ = try KeyringBackup.restore(
            backup.bytes, passphrase: passphrase, into: keys, force: true, now: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(try SchemaMark.read(directory: keys)?.migrations == further)

        // A backup whose mark is the further one keeps its own.
        let newer = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: .minimumForTests)
        try SchemaMark(migrations: older).write(directory: keys)
        _ = try KeyringBackup.restore(
            newer.bytes, passphrase: passphrase, into: keys, force: true, now: Date(timeIntervalSince1970: 1_800_000_060))
        #expect(try SchemaMark.read(directory: keys)?.migrations == further)
    }

    /// Two marks that diverged are joined, and an existing mark that cannot be read refuses the
    /// restore and leaves the keyring as it was.
    @Test func aDivergedMarkIsJoinedAndAnUnreadableOneRefusesTheRestore() throws {
        let tmp = TemporaryDirectory()
        let keys = tmp.sub("keys")
        _ = try Keyring.create(in: keys)
        let passphrase = try KeyringSealingTests.phrase("a backup passphrase")
        try SchemaMark(migrations: ["v1", "v2-backup-only"]).write(directory: keys)
        let backup = try KeyringBackup.create(directory: keys, passphrase: passphrase, strength: .minimumForTests)
        try SchemaMark(migrations: ["v1", "v2-registry-only"]).write(directory: keys)
        _ = try KeyringBackup.restore(
            backup.bytes, passphrase: passphrase, into: keys, force: true, now: Date(timeIntervalSince1970: 1_800_000_000))
        #expect(try SchemaMark.read(directory: keys)?.migrations == ["v1", "v2-backup-only", "v2-registry-only"])

        tmp.write(Array("not a mark".utf8), to: keys + "/schema-mark")
        let manifest = try Data(contentsOf: URL(fileURLWithPath: keys + "/keyring.json"))
        #expect(throws: KeyringError.self) {
            _ = try KeyringBackup.restore(
                backup.bytes, passphrase: passphrase, into: keys, force: true, now: Date(timeIntervalSince1970: 1_800_000_060))
        }
        #expect(try Data(contentsOf: URL(fileURLWithPath: keys + "/keyring.json")) == manifest)
        #expect(try Data(contentsOf: URL(fileURLWithPath: keys + "/schema-mark")) == Data("not a mark".utf8))
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: tmp.path).filter { $0.contains(".restore-") }
        #expect(leftovers.isEmpty, "the staging directory is removed: \(leftovers)")
    }
}
