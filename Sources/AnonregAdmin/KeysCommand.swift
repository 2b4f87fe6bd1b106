import AnonregClinic
import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

private struct VersionBody: Encodable { var version: Int }
private struct BatchBody: Encodable { var batchSize: Int }
private struct NoBody: Encodable {}

/// `anonreg keys …`: the KEK lifecycle through the running daemon (admin).
public struct KeysCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "keys",
        abstract:
            "KEK lifecycle through the running daemon (admin): status, stage, rotate, rewrap, retire, destroy; keyring backups and passphrase.",
        subcommands: [
            Status.self, Stage.self, Rotate.self, Rewrap.self, Retire.self, Destroy.self, ExportOPRFSeed.self,
            KeyringBackupCommand.self, KeyringRestoreCommand.self, KeyringPassphraseCommand.self,
        ])
    public init() {}

    static func table(_ s: KeysStatusResponse) -> String {
        let rows = s.versions.map { ["\($0.version)", $0.status, $0.createdAt, "\($0.subjects)"] }
        let header = ["VERSION", "STATUS", "CREATED", "SUBJECTS"]
        let widths = header.indices.map { i in ([header] + rows).map { $0[i].count }.max() ?? 0 }
        let lines = ([header] + rows).map { row in
            row.enumerated().map { $0.element.padding(toLength: widths[$0.offset], withPad: " ", startingAt: 0) }
                .joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return lines.joined(separator: "\n")
            + "\nprimary: \(s.primary); OPRF public key \(s.oprfPublicKey.prefix(16))…, linkage epoch \(s.linkageEpoch)"
    }

    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Each KEK version: status, creation date, subjects using it.")
        @OptionGroup var connection: ConnectionOptions
        func run() throws {
            let client = ClinicClient(options: connection)
            let (s, raw) = try client.call("GET", "/v1/admin/keys", as: KeysStatusResponse.self)
            client.output(raw) { KeysCommand.table(s) }
        }
    }

    struct Stage: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the next KEK version as staged: it wraps nothing until `keys rotate` makes it primary.",
            discussion: """
                With several nodes on one PostgreSQL registry, stage on one node, copy its \
                kek-N.key and keyring.json to every other node and reload them (SIGHUP), then rotate on \
                any node: no node ever lacks the registry's primary (docs/OPERATIONS.md \
                §PostgreSQL and several nodes, "KEK rotation"). Refused while a version is staged, and \
                on PostgreSQL when the registry already has the next version number.
                """)
        @OptionGroup var connection: ConnectionOptions
        func run() throws {
            let client = ClinicClient(options: connection)
            let (s, raw) = try client.call("POST", "/v1/admin/keys/stage", body: NoBody(), as: KeysStatusResponse.self)
            client.output(raw) { KeysCommand.table(s) }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the staged KEK, or else a new one, primary; new subjects use it at once.",
            discussion: """
                --if-older-than DAYS rotates only when the primary is at least DAYS old (for a \
                timer, see systemd/anonreg-rotate.timer); with --rewrap an unfinished rewrap is \
                resumed either way.
                """)
        @OptionGroup var connection: ConnectionOptions
        @Flag(help: "Rewrap every data key to the new primary right away.") var rewrap = false
        @Option(help: "Data keys per rewrap batch with --rewrap (one transaction each).") var batchSize = 1000
        @Option(help: "Rotate only when the primary KEK is at least this many days old.") var ifOlderThan: Int?

        func validate() throws {
            if let ifOlderThan, ifOlderThan < 1 { throw ValidationError("--if-older-than takes a number of days, 1 or more") }
        }

        func run() throws {
            let client = ClinicClient(options: connection)
            if let days = ifOlderThan {
                let (s, _) = try client.call("GET", "/v1/admin/keys", as: KeysStatusResponse.self)
                let created = s.versions.first { $0.version == s.primary }.flatMap { ISO8601DateFormatter().date(from: $0.primarySince) }
                let age = created.map { Int(Date().timeIntervalSince($0) / 86_400) } ?? Int.max
                if age < days {
                    if connection.json {
                        print("{\"rotated\":false,\"primary\":\(s.primary),\"ageDays\":\(age)}")
                    } else {
                        print("primary KEK \(s.primary) is \(age) day(s) old (less than \(days)); not rotated")
                    }
                    if rewrap { try Rewrap.run(client: client, batchSize: batchSize, json: connection.json) }
                    return
                }
            }
            let (s, raw) = try client.call("POST", "/v1/admin/keys/rotate", body: NoBody(), as: KeysStatusResponse.self)
            client.output(raw) { KeysCommand.table(s) }
            if rewrap { try Rewrap.run(client: client, batchSize: batchSize, json: connection.json) }
        }
    }

    struct Rewrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every data key to the primary KEK, in batches, while the daemon serves. Safe to interrupt and run again.")
        @OptionGroup var connection: ConnectionOptions
        @Option(help: "Data keys per batch (one transaction each).") var batchSize = 1000
        func run() throws { try Self.run(client: ClinicClient(options: connection), batchSize: batchSize, json: connection.json) }

        /// Progress: a line with rate and ETA redrawn on a terminal, JSON lines otherwise.
        static func run(client: ClinicClient, batchSize: Int, json: Bool) throws {
            let started = Date()
            var done = 0
            let terminal = isatty(1) == 1 && !json
            while true {
                let (r, _) = try client.call(
                    "POST", "/v1/admin/keys/rewrap", body: BatchBody(batchSize: batchSize), as: RewrapResponse.self)
                done += r.rewrapped
                let elapsed = max(Date().timeIntervalSince(started), 0.001)
                let rate = Double(done) / elapsed
                let eta = rate > 0 ? Double(r.remaining) / rate : 0
                if terminal {
                    let total = done + r.remaining
                    let width = 30
                    let filled = total == 0 ? width : width * done / total
                    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
                    print("\r[\(bar)] \(done)/\(total) rewrapped, \(Int(rate))/s, ETA \(Int(eta))s   ", terminator: "")
                    fflush(nil)
                } else {
                    print("{\"rewrapped\":\(done),\"remaining\":\(r.remaining),\"primary\":\(r.primary),\"perSecond\":\(Int(rate))}")
                    fflush(nil)  // progress lines are read as they come (a pipe, a log, a test)
                }
                if r.remaining == 0 || r.rewrapped == 0 { break }
            }
            if terminal { print("\ndone: every data key is under the primary KEK") }
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Retire a KEK version; refused while any subject still uses it.")
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The KEK version.") var version: Int?
        @Flag(help: "Retire every active version that no subject uses (for a timer).") var unused = false

        func validate() throws {
            if (version == nil) == !unused { throw ValidationError("give a VERSION or --unused (not both)") }
        }

        func run() throws {
            let client = ClinicClient(options: connection)
            guard unused else {
                let (s, raw) = try client.call(
                    "POST", "/v1/admin/keys/retire", body: VersionBody(version: version!), as: KeysStatusResponse.self)
                client.output(raw) { KeysCommand.table(s) }
                return
            }
            var (s, raw) = try client.call("GET", "/v1/admin/keys", as: KeysStatusResponse.self)
            let candidates = s.versions.filter { $0.status == "active" && $0.subjects == 0 }.map(\.version)
            for v in candidates {
                (s, raw) = try client.call("POST", "/v1/admin/keys/retire", body: VersionBody(version: v), as: KeysStatusResponse.self)
            }
            client.output(raw) {
                (candidates.isEmpty ? "no active KEK version is unused" : "retired: " + candidates.map(String.init).joined(separator: ", "))
                    + "\n" + KeysCommand.table(s)
            }
        }
    }

    struct Destroy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy a retired KEK version: its key file is overwritten and removed. Backups wrapped under it become unreadable.",
            discussion: """
                Without --yes, the version number must be typed back on a terminal; on anything else \
                (a pipe, a timer) the command refuses. --retired-for DAYS destroys every version \
                retired at least DAYS ago (needs --yes).
                """)
        @OptionGroup var connection: ConnectionOptions
        @Argument(help: "The KEK version.") var version: Int?
        @Option(help: "Destroy every version retired at least this many days ago.") var retiredFor: Int?
        @Flag(help: "Do not ask for the typed confirmation.") var yes = false

        func validate() throws {
            if (version == nil) == (retiredFor == nil) { throw ValidationError("give a VERSION or --retired-for DAYS (not both)") }
            if let retiredFor, retiredFor < 0 { throw ValidationError("--retired-for takes a number of days, 0 or more") }
            if retiredFor != nil && !yes { throw ValidationError("--retired-for needs --yes") }
        }

        func run() throws {
            let client = ClinicClient(options: connection)
            guard let version else {
                var (s, raw) = try client.call("GET", "/v1/admin/keys", as: KeysStatusResponse.self)
                let cutoff = Date().addingTimeInterval(-Double(retiredFor!) * 86_400)
                let due = s.versions.filter { entry in
                    entry.status == "retired"
                        && (entry.retiredAt.flatMap { ISO8601DateFormatter().date(from: $0) }.map { $0 <= cutoff } ?? false)
                }.map(\.version)
                for v in due {
                    (s, raw) = try client.call("POST", "/v1/admin/keys/destroy", body: VersionBody(version: v), as: KeysStatusResponse.self)
                }
                client.output(raw) {
                    (due.isEmpty
                        ? "no KEK version was retired \(retiredFor!) or more days ago"
                        : "destroyed: " + due.map(String.init).joined(separator: ", "))
                        + "\n" + KeysCommand.table(s)
                }
                return
            }
            if !yes {
                guard isatty(0) == 1 else {
                    throw ClinicFailure(
                        exitCode: 3,
                        description:
                            "refusing to destroy KEK version \(version) without a typed confirmation, and stdin is not a terminal; pass --yes"
                    )
                }
                print("Type the version number (\(version)) to destroy KEK version \(version) for good: ", terminator: "")
                fflush(nil)
                guard readLine()?.trimmingCharacters(in: .whitespaces) == String(version) else {
                    throw ClinicFailure(exitCode: 3, description: "not confirmed; nothing was destroyed")
                }
            }
            let (s, raw) = try client.call(
                "POST", "/v1/admin/keys/destroy", body: VersionBody(version: version), as: KeysStatusResponse.self)
            client.output(raw) { KeysCommand.table(s) }
        }
    }
}

/// `anonreg keys export-oprf-seed`: the OPRF seed and key info for an offline (paper) backup.
/// Written only to a terminal or to a new file created with mode 0600.
struct ExportOPRFSeed: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export-oprf-seed",
        abstract: "Write the OPRF seed and key info for an offline backup (a new 0600 file, or the terminal).",
        discussion: """
            With --output, the file is exactly what `anonreg init --state-dir DIR --oprf-seed-file \
            FILE` reads back to rebuild the same OPRF key, so linkage values stay comparable after \
            a disaster; the seed never has to go on a command line. On a terminal the same lines \
            are shown, to copy onto paper and type back into a 0600 file. Anyone holding the seed \
            can compute linkage values offline: keep it like the keys themselves.
            """)
    @Option(help: "The state directory (its keys/ is read).") var stateDir: String
    @Option(help: "Write to this new file (mode 0600) instead of the terminal.") var output: String?
    @Option(help: "File holding the keyring passphrase, for a sealed keyring.") var passphraseFile: String?

    func run() throws {
        // The output file is created as the caller (root's is root's), the passphrase file read;
        // then root works as the state directory's owner to read the keys.
        var outputFD: Int32 = -1
        if let output {
            outputFD = open(output, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
            guard outputFD >= 0 else {
                throw CLIFailure.refused("cannot create \(output) (it must not exist yet): \(String(cString: strerror(errno)))")
            }
        } else {
            guard isatty(1) == 1 else {
                throw CLIFailure.refused("refusing to write the OPRF seed to a pipe or file; use a terminal or --output NEW_FILE")
            }
        }
        var written = false
        defer {
            if outputFD >= 0 {
                close(outputFD)
                if !written, let output { unlink(output) }
            }
        }
        let early = try PassphraseInput.Early(file: passphraseFile)
        try OfflineAccess.workAsOwner(stateDirectory: stateDir, keysDirectory: stateDir + "/keys")
        let passphrase: KeyMaterial? = early.isNone ? nil : try early.obtain(purpose: "keyring passphrase", confirm: false)
        let exported: (hex: String, keyInfo: String)
        let keyInfo: [UInt8]
        do {
            let keyring = try Keyring.load(from: KeyringSource(directory: stateDir + "/keys"), passphrase: passphrase)
            TestStop.at("cli-keys-loaded")
            exported = try keyring.exportOPRFSeed()
            keyInfo = (try? Hex.decode(keyring.manifest.oprf.keyInfo)) ?? Array(exported.keyInfo.utf8)
        } catch {
            throw CLIFailure.failed("\(error)")
        }
        let text = OPRFSeedFile.render(seedHex: exported.hex, keyInfo: keyInfo)
        if let output {
            fchmod(outputFD, 0o600)
            let bytes = Array(text.utf8)
            guard write(outputFD, bytes, bytes.count) == bytes.count, fsync(outputFD) == 0 else {
                throw CLIFailure.failed("cannot write \(output)")
            }
            written = true
            print("wrote \(output) (mode 0600); restore with: anonreg init --state-dir DIR --oprf-seed-file \(output)")
        } else {
            print(text + "Copy these lines into a file (chmod 600), then: anonreg init --state-dir DIR --oprf-seed-file FILE")
        }
    }
}
