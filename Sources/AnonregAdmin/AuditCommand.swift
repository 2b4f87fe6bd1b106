import AnonregClinic
import ArgumentParser
import Foundation
import RegistryCrypto
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

        func run() throws {
            let report: AuditChain.Report
            let raw: Data
            if let stateDir {
                try OfflineAccess.workAsOwner(stateDirectory: stateDir)
                let publicKey: [UInt8]
                do {
                    publicKey = try Hex.decode(try KeyringManifest.read(directory: stateDir + "/keys").audit.publicKey)
                } catch {
                    throw CLIFailure.failed("cannot read the audit public key: \(error)")
                }
                do { report = try AuditLogReader.verify(databasePath: stateDir + "/registry.sqlite", publicKey: publicKey) } catch {
                    throw CLIFailure.failed("\(error)")
                }
                raw = (try? JSONEncoder().encode(report)) ?? Data()
            } else {
                (report, raw) = try ClinicClient(options: connection).call("GET", "/v1/admin/audit/verify", as: AuditChain.Report.self)
            }
            if connection.json {
                print(String(decoding: raw, as: UTF8.self))
            } else if report.ok {
                print("audit log OK: \(report.entries) entries (\(report.firstSeq.map(String.init) ?? "-")…\(report.lastSeq.map(String.init) ?? "-")), \(report.checkpoints) signed checkpoints, \(report.unsignedTail) entries after the last checkpoint")
            } else {
                print("audit log TAMPERED at entry \(report.badSeq.map(String.init) ?? "?"): \(report.problem ?? "unknown problem")")
            }
            if !report.ok { throw ExitCode(1) }
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
                FileHandle.standardOutput.write(body)
                let lines = text.split(separator: "\n")
                guard let last = lines.last, let seq = Self.seq(of: last), lines.count == 10_000 else { return }
                after = seq
            }
        }

        static func seq(of line: Substring) -> Int64? {
            guard let data = line.data(using: .utf8),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return nil }
            return (object["seq"] as? NSNumber)?.int64Value
        }
    }
}
