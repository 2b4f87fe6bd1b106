import Foundation
import RegistryCore
import RegistryKeyring
import RegistryPostgres
import RegistryProtocol
import RegistryStore

/// Child process of the store's SIGKILL test (Tests/RegistryStoreTests/CrashTests.swift).
///
/// Usage: anonreg-store-crash-helper STATE_DIR WRITERS
///        anonreg-store-crash-helper backfill STATE_DIR BATCH
///        anonreg-store-crash-helper postgres SOCKET_DIR PORT DATABASE USER PASSWORD_FILE KEYS_DIR WRITERS
///        anonreg-store-crash-helper postgres-job SOCKET_DIR PORT DATABASE USER PASSWORD_FILE KEYS_DIR
///
/// Opens STATE_DIR/keys and STATE_DIR/registry.sqlite, enrols one subject and prints
/// `case <handle>`, then runs WRITERS concurrent loops that append check-ups to it. After each
/// append is acknowledged (the call returned), it prints `ack <token>` and flushes, so every
/// printed token is a write the store said was durable. It runs until killed.
///
/// With `postgres`, the same writers run against a PostgreSQL registry (the keys in KEYS_DIR;
/// Tests/StorageConformanceTests/PostgresHarness.swift).
///
/// With `postgres-job`, it takes the daily sweep job (`runIfDue`), prints `running`, and holds
/// it until killed (Tests/PostgresBackendTests/PostgresJobTests.swift).
///
/// With `backfill`, it runs the monitoring summaries' backfill (`SummaryBackfill`) with BATCH
/// subjects per transaction, printing `built <n>` after each batch and `done` at the end
/// (Tests/MonitoringSimulationTests/SummaryBackfillTests.swift kills it part-way).
///
/// It exits by itself once its parent is gone (`exitWhenOrphaned`): a test process killed by
/// hand must not leave writers spinning beside every later run.
@main
struct CrashHelper {
    static func main() async {
        exitWhenOrphaned()
        let arguments = CommandLine.arguments
        if arguments.count == 4, arguments[1] == "backfill", let batch = Int(arguments[3]) {
            await backfill(directory: arguments[2], batch: batch)
            return
        }
        if arguments.count == 8, arguments[1] == "postgres-job", let port = Int(arguments[3]) {
            do {
                let keyring = try Keyring.load(from: KeyringSource(directory: arguments[7]))
                let config = PostgresConfig(
                    endpoint: .unixSocket(directory: arguments[2], port: port), database: arguments[4], user: arguments[5],
                    passwordFile: arguments[6], connectTimeout: .seconds(300))
                let store = try await PostgresStore.open(config, keys: KeyCustody(keyring))
                _ = try await store.runIfDue(.sweep, every: .seconds(86400)) {
                    emit("running")
                    while true { try await Task.sleep(for: .seconds(3600)) }
                }
                emit("not due")
            } catch {
                FileHandle.standardError.write(Data("crash helper: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        if arguments.count == 9, arguments[1] == "postgres", let port = Int(arguments[3]), let writers = Int(arguments[8]) {
            do {
                let keyring = try Keyring.load(from: KeyringSource(directory: arguments[7]))
                let config = PostgresConfig(
                    endpoint: .unixSocket(directory: arguments[2], port: port), database: arguments[4], user: arguments[5],
                    passwordFile: arguments[6], connectTimeout: .seconds(300))
                await runWriters(try await PostgresStore.open(config, keys: KeyCustody(keyring)), writers: writers)
            } catch {
                FileHandle.standardError.write(Data("crash helper: \(error)\n".utf8))
                exit(1)
            }
            return
        }
        guard arguments.count == 3, let writers = Int(arguments[2]) else {
            FileHandle.standardError.write(
                Data(
                    "usage: anonreg-store-crash-helper STATE_DIR WRITERS | backfill STATE_DIR BATCH | postgres SOCKET_DIR PORT DATABASE USER PASSWORD_FILE KEYS_DIR WRITERS\n"
                        .utf8))
            exit(2)
        }
        let dir = arguments[1]
        do {
            let keyring = try Keyring.load(from: KeyringSource(directory: dir + "/keys"))
            await runWriters(try SQLiteRegistryStore(path: dir + "/registry.sqlite", keyring: keyring), writers: writers)
        } catch {
            FileHandle.standardError.write(Data("crash helper: \(error)\n".utf8))
            exit(1)
        }
    }

    /// Enrols one subject and appends check-ups to it from `writers` loops until killed.
    static func runWriters(_ store: any RegistryStorage, writers: Int) async {
        do {
            let clinic = ClinicID("crash")!
            let columns = SubjectColumns(status: .active, nextDue: Day("2030-01-01"), reviewOn: nil)
            let receipt = try await store.enrol(
                Enrolment(
                    clinic: clinic, linkage: nil,
                    records: [NewRecord(kind: .consent, plaintext: Array("consent".utf8))],
                    columns: columns, counters: []))
            emit("case \(receipt.caseHandle.text)")
            let run = UInt64.random(in: 0..<UInt64.max)
            await withTaskGroup(of: Void.self) { group in
                for writer in 0..<writers {
                    group.addTask {
                        var n = 0
                        while true {
                            n += 1
                            let token = "t-\(run)-\(writer)-\(n)"
                            do {
                                // open → commit-if-unchanged, again after a lost race, as
                                // MonitoringService does it (docs/STORAGE.md §Changes).
                                while true {
                                    let opened = try await store.openForChange(case: receipt.caseHandle, clinic: clinic)
                                    let change = SubjectChange(
                                        append: [NewRecord(kind: .checkup, plaintext: Array(token.utf8))], columns: opened.view.columns)
                                    do throws(StorageError) {
                                        try await store.commit(change, case: receipt.caseHandle, clinic: clinic, ifUnchanged: opened.stamp)
                                        break
                                    } catch .subjectChanged {
                                        continue
                                    }
                                }
                                emit("ack \(token)")
                            } catch {
                                FileHandle.standardError.write(Data("write failed: \(error)\n".utf8))
                                exit(1)
                            }
                        }
                    }
                }
            }
        } catch {
            FileHandle.standardError.write(Data("crash helper: \(error)\n".utf8))
            exit(1)
        }
    }

    static func backfill(directory dir: String, batch: Int) async {
        do {
            let keyring = try Keyring.load(from: KeyringSource(directory: dir + "/keys"))
            let store = try SQLiteRegistryStore(path: dir + "/registry.sqlite", keyring: keyring)
            let report = try await SummaryBackfill(storage: store).run(batch: batch) { progress in emit("built \(progress.built)") }
            emit("done \(report.built) failed \(report.failed)")
            try store.close()
        } catch {
            FileHandle.standardError.write(Data("crash helper: \(error)\n".utf8))
            exit(1)
        }
    }

    static let lock = NSLock()

    static func emit(_ line: String) {
        lock.lock()
        defer { lock.unlock() }
        let bytes = Array((line + "\n").utf8)
        var done = 0
        while done < bytes.count {
            let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
            if n <= 0 { exit(1) }
            done += n
        }
    }
}

/// Ends this process once the process that started it has gone (it was re-parented, so
/// `getppid()` changed), checked twice a second from a thread of its own. Not
/// `PR_SET_PDEATHSIG`: that fires when the parent's spawning *thread* ends, and a test's thread
/// may be a pool thread that ends long before the test does.
func exitWhenOrphaned() {
    let parent = getppid()
    let thread = Thread {
        while true {
            usleep(500_000)
            if getppid() != parent { _exit(3) }
        }
    }
    thread.start()
}
