import Foundation

/// A remote clinic's system account on the registry host (docs/OPERATIONS.md §Remote clinics).
///
/// The clinic's system reaches the socket through OpenSSH's Unix-socket forwarding; sshd then
/// connects to the socket as this account, so SO_PEERCRED names it and the clinics table
/// authorises it like a local clinic. The account:
/// - is new (an existing account is never turned into a clinic);
/// - has no password (`*`), no home directory and `/usr/sbin/nologin` as its shell;
/// - is in the socket's group (to connect) and in the group that the sshd drop-in
///   `ssh/anonreg-remote-clinics.conf` restricts (`Match Group`);
/// - logs in only with the one key in a root-owned file, whose options repeat the drop-in's
///   restrictions (`restrict,port-forwarding`, a forced `nologin`).
struct RemoteClinicAccount {
    var name: String
    var clinic: String
    var socketGroup: String
    var sshGroup: String
    var keysDirectory: String

    static let keyTypes: Set<String> = [
        "ssh-ed25519", "sk-ssh-ed25519@openssh.com", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
        "sk-ecdsa-sha2-nistp256@openssh.com", "ssh-rsa", "rsa-sha2-256", "rsa-sha2-512",
    ]

    /// The options every remote clinic key gets in its authorized_keys line: no PTY, no agent,
    /// X11 or user rc, and a forced command that ends any session; only forwarding is allowed
    /// (OpenSSH applies the `port-forwarding` flag to TCP and Unix-socket forwards alike; the
    /// drop-in's `PermitOpen [socket path]:*` then leaves only the forward to anonregd).
    static let keyOptions = "restrict,port-forwarding,command=\"/usr/sbin/nologin\""

    /// A POSIX account name useradd accepts: `[a-z_][a-z0-9_-]{0,31}`.
    static func validName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...32).contains(bytes.count) else { return false }
        func first(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || b == 0x5F }
        func rest(_ b: UInt8) -> Bool { first(b) || (b >= 0x30 && b <= 0x39) || b == 0x2D }
        return first(bytes[0]) && bytes.dropFirst().allSatisfy(rest)
    }

    /// One OpenSSH public key, `TYPE BASE64 [COMMENT]`, read from `path`. Lines with options, a
    /// private key and files with several keys are refused.
    static func publicKey(from path: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw CLIFailure.failed("cannot read the public key file \(path)")
        }
        let lines = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        guard lines.count == 1 else {
            throw CLIFailure.usage("\(path) must hold exactly one OpenSSH public key (it has \(lines.count) lines)")
        }
        let parts = lines[0].split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true)
        let base64 = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")
        guard parts.count >= 2, keyTypes.contains(String(parts[0])), parts[1].count >= 16, parts[1].allSatisfy(base64.contains),
            Data(base64Encoded: String(parts[1])) != nil
        else {
            throw CLIFailure.usage("\(path) is not an OpenSSH public key line (TYPE BASE64 [COMMENT], without options)")
        }
        return parts.joined(separator: " ")
    }

    var keyFile: String { keysDirectory + "/" + name }

    /// Creates the account and its key file; returns the account's uid.
    func create(key: String) throws -> UInt32 {
        guard getuid() == 0 else { throw CLIFailure.refused("creating a system account needs root") }
        guard getpwnam(name) == nil else {
            throw CLIFailure.refused(
                "the account \(name) exists already; each remote clinic gets a new account, and an existing one is never turned into a clinic"
            )
        }
        for group in [socketGroup, sshGroup] where getgrnam(group) == nil {
            throw CLIFailure.failed(
                "the group \(group) does not exist (make install's sysusers file creates anonreg-clinic and anonreg-remote; see docs/OPERATIONS.md §Remote clinics)"
            )
        }
        try Self.run(
            "/usr/sbin/useradd",
            [
                "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                "--password", "*", "--groups", "\(socketGroup),\(sshGroup)", "--comment", "anonreg remote clinic \(clinic)", name,
            ])
        guard let entry = getpwnam(name) else { throw CLIFailure.failed("useradd reported success, but \(name) does not exist") }
        let uid = entry.pointee.pw_uid
        do {
            try writeKeyFile(key)
        } catch {
            remove()
            throw error
        }
        return uid
    }

    /// Undoes `create` (a later step failed).
    func remove() {
        unlink(keyFile)
        _ = try? Self.run("/usr/sbin/userdel", [name])
    }

    /// `DIR/NAME`, owned by root, mode 0644, in a root-owned 0755 directory: the account cannot
    /// change its own key (sshd's StrictModes checks the same).
    private func writeKeyFile(_ key: String) throws {
        try FileManager.default.createDirectory(
            atPath: keysDirectory, withIntermediateDirectories: true,
            attributes: [.posixPermissions: 0o755])
        let line = "\(Self.keyOptions) \(key)\n"
        let temp = keyFile + ".tmp-\(getpid())"
        guard FileManager.default.createFile(atPath: temp, contents: Data(line.utf8), attributes: [.posixPermissions: 0o644]) else {
            throw CLIFailure.failed("cannot write \(temp)")
        }
        chmod(temp, 0o644)
        chown(temp, 0, 0)
        guard rename(temp, keyFile) == 0 else {
            unlink(temp)
            throw CLIFailure.failed("cannot write \(keyFile): \(String(cString: strerror(errno)))")
        }
    }

    /// The command the clinic's host runs to keep the forward up.
    func clinicSideCommand(host: String, registrySocket: String) -> String {
        "ssh -N -o ExitOnForwardFailure=yes -o StreamLocalBindUnlink=yes -o ServerAliveInterval=30 -o ServerAliveCountMax=3 "
            + "-i /etc/anonreg-clinic/id_ed25519 -L /run/anonreg-clinic/anonreg.sock:\(registrySocket) \(name)@\(host)"
    }

    @discardableResult
    static func run(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = errors
        do { try process.run() } catch { throw CLIFailure.failed("cannot run \(executable): \(error)") }
        let output = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw CLIFailure.failed("\(executable) \(arguments.joined(separator: " ")) failed (\(process.terminationStatus)): \(output)")
        }
        return output
    }
}
