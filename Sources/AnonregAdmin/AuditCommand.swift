import AnonregClinic
import ArgumentParser
import Foundation
import RegistryConfig
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryStore

/// `anonreg audit verify|export`.
public struct AuditCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "audit", abstract: "Verify or export the tamper-evident audit log.",
        subcommands: [Verify.self, Export.self])
    public init() {}

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the hash chain and every checkpoint signature; exit 1 on any tampering.",
            discussion: """
                With --state-dir it works offline on a stopped state directory and needs only \
                keys/keyring.json (the audit public key). Without it, it asks the running daemon \
                (admin). It reports the first entry that does not verify.
                """)
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Verify this stopped state directory offline instead of asking the daemon.") var stateDir: String?
        @Option(
            help:
                "With --state-dir: the configuration whose audit.checkpoint_every applies (default: STATE_DIR/anonreg.toml if present, else 1000)."
        )
        var config: String?
        @Option(help: "With --state-dir: the keys directory holding keyring.json and the audit anchor (default: STATE_DIR/keys).")
        var keysDir: String?
        @Option(
            help: "Verify an exported copy (JSON lines of `anonreg audit export`) with only the audit public key, without the registry.")
        var export: String?
        @Option(help: "With --export: the audit public key (64 hex digits; `anonreg keys status` or keys/keyring.json shows it).")
        var publicKey: String?
        @Option(help: "With --export: a keyring.json to read the audit public key from.") var keyringJson: String?
        @Option(help: "With --export: the most entries the registry writes between checkpoints (audit.checkpoint_every).") var interval:
            Int = 1000

        func run() throws {
            let report: AuditChain.Report
            let raw: Data
            if let export {
                report = try AuditCommand.verifyExport(export, publicKey: publicKey, keyringJSON: keyringJson, interval: interval)
                raw = (try? JSONEncoder().encode(report)) ?? Data()
            } else if let stateDir {
                try OfflineAccess.requireSQLite(
                    config: config, stateDirectory: stateDir, keysDirectory: keysDir, command: "anonreg audit verify --state-dir",
                    instead: "ask a running node: `anonreg audit verify` without --state-dir")
                let keys = keysDir ?? stateDir + "/keys"
                try OfflineAccess.workAsOwner(stateDirectory: stateDir, keysDirectory: keys)
                let publicKey: [UInt8]
                do {
                    publicKey = try Hex.decode(try KeyringManifest.read(directory: keys).audit.publicKey)
                } catch {
                    throw CLIFailure.failed("cannot read the audit public key: \(error)")
                }
                let interval = try AuditCommand.checkpointInterval(config: config, stateDir: stateDir)
                do {
                    report = try AuditLogReader.verify(
                        databasePath: stateDir + "/registry.sqlite", publicKey: publicKey, interval: interval,
                        keysDirectory: keys)
                } catch {
                    throw CLIFailure.failed("\(error)")
                }
                raw = (try? JSONEncoder().encode(report)) ?? Data()
            } else {
                (report, raw) = try ClinicClient(options: connection).call("GET", "/v1/admin/audit/verify", as: AuditChain.Report.self)
            }
            if connection.json {
                print(String(decoding: raw, as: UTF8.self))
            } else if report.ok {
                print(
                    "audit log OK: \(report.entries) entries (\(report.firstSeq.map(String.init) ?? "-")…\(report.lastSeq.map(String.init) ?? "-")), \(report.checkpoints) signed checkpoints, \(report.unsignedTail) entries after the last checkpoint"
                )
                if let anchor = report.anchorSeq { print("the log reaches the signed anchor beside the keyring (entry \(anchor))") }
                if export != nil, report.unsignedTail > 0, let signed = report.lastCheckpointSeq {
                    print(
                        "verified through entry \(signed); the \(report.unsignedTail) entries after it are not signed yet and prove nothing until a later export covers them"
                    )
                }
                for restore in report.restores ?? [] {
                    print(
                        "entry \(restore) records a restore from a backup: entries numbered before it that are not in this log were written before the restore (compare with your exports)"
                    )
                }
            } else {
                print("audit log TAMPERED at entry \(report.badSeq.map(String.init) ?? "?"): \(report.problem ?? "unknown problem")")
            }
            if !report.ok { throw ExitCode(1) }
        }
    }

    /// `audit verify --export`: an exported copy checked with the public key alone (docs/CRYPTO.md
    /// §Audit, "Exports"). It may start after a checkpoint (a later export), and its last entries
    /// may not be signed yet; everything else is checked as for the registry's own log.
    static func verifyExport(_ path: String, publicKey hex: String?, keyringJSON: String?, interval: Int) throws -> AuditChain.Report {
        let key: [UInt8]
        do {
            if let hex {
                key = try Hex.decode(hex)
            } else if let keyringJSON {
                // Only the public part is read: keyring.json holds no secret, and an auditor's copy
                // need not be the registry's file.
                let object = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: keyringJSON))) as? [String: Any]
                guard let hex = (object?["audit"] as? [String: Any])?["publicKey"] as? String else {
                    throw CLIFailure.failed("\(keyringJSON) holds no audit public key")
                }
                key = try Hex.decode(hex)
            } else {
                throw CLIFailure.failed("--export needs the audit public key: --public-key HEX or --keyring-json FILE")
            }
        } catch let failure as CLIFailure { throw failure } catch {
            throw CLIFailure.failed("cannot read the audit public key: \(error)")
        }
        guard key.count == 32 else { throw CLIFailure.failed("the audit public key must be 64 hex digits") }
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch { throw CLIFailure.failed("cannot read \(path): \(error)") }
        var entries: [AuditChain.Entry] = []
        var checkpoints: [Int64: AuditChain.Checkpoint] = [:]
        for (number, line) in text.split(separator: "\n").enumerated() {
            guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
                throw CLIFailure.failed("\(path), line \(number + 1): not a JSON object")
            }
            do {
                if object["type"] as? String == "checkpoint" {
                    let checkpoint = AuditChain.Checkpoint(
                        seq: try field(object, "seq"), hash: try Hex.decode(try field(object, "hash") as String),
                        at: try field(object, "at"),
                        signature: try Hex.decode(try field(object, "signature") as String), format: try field(object, "format"),
                        previous: (object["previous"] as? NSNumber)?.int64Value, interval: (object["interval"] as? NSNumber)?.intValue)
                    checkpoints[checkpoint.seq] = checkpoint
                } else {
                    entries.append(
                        AuditChain.Entry(
                            seq: try field(object, "seq"), at: try field(object, "at"), actor: try field(object, "actor"),
                            action: try field(object, "action"), result: try field(object, "result"),
                            subjectCommit: try (object["subjectCommit"] as? String).map { try Hex.decode($0) },
                            prevHash: try Hex.decode(try field(object, "prevHash") as String),
                            hash: try Hex.decode(try field(object, "hash") as String)))
                }
            } catch {
                throw CLIFailure.failed("\(path), line \(number + 1): \(error)")
            }
        }
        return AuditChain.verify(
            entries: entries, checkpoints: checkpoints.values.sorted { $0.seq < $1.seq }, publicKey: key,
            interval: interval, scope: .export)
    }

    static func field<T>(_ object: [String: Any], _ name: String) throws -> T {
        if T.self == Int64.self, let number = object[name] as? NSNumber { return number.int64Value as! T }
        if T.self == Int.self, let number = object[name] as? NSNumber { return number.intValue as! T }
        guard let value = object[name] as? T else { throw CLIFailure.failed("the field \(name) is missing or has the wrong type") }
        return value
    }

    /// `audit.checkpoint_every` of the configuration that goes with an offline state directory.
    static func checkpointInterval(config: String?, stateDir: String) throws -> Int {
        let path = config ?? stateDir + "/anonreg.toml"
        guard config != nil || FileManager.default.fileExists(atPath: path) else { return 1000 }
        do { return try DaemonConfig.load(path: path).audit.checkpointEvery } catch {
            throw CLIFailure.failed("configuration \(path): \(error)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write audit entries as JSON lines (for an external, append-only log).")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Only entries after this entry number.") var since: Int64 = 0

        func run() throws {
            let client = ClinicClient(options: connection)
            var after = since
            while true {
                let body = try client.raw("/v1/admin/audit/export?since=\(after)&limit=10000")
                let text = String(decoding: body, as: UTF8.self)
                if text.isEmpty { return }
                // A page after the first starts with the checkpoint the previous page ended on: skip it.
                var lines = text.split(separator: "\n", omittingEmptySubsequences: true)
                if after > since, let first = lines.first, first.contains("\"type\":\"checkpoint\""), Self.seq(of: first) == after {
                    lines.removeFirst()
                }
                if !lines.isEmpty { FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8)) }
                let entries = lines.filter { !$0.contains("\"type\":\"checkpoint\"") }
                guard let last = entries.last, let seq = Self.seq(of: last), entries.count == 10_000 else { return }
                after = seq
            }
        }

        static func seq(of line: Substring) -> Int64? {
            guard let data = line.data(using: .utf8),
                let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
            else { return nil }
            return (object["seq"] as? NSNumber)?.int64Value
        }
    }
}
