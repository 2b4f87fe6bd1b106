import Foundation

/// A PostgreSQL 15 cluster of its own for one test: `initdb` in a fresh temporary directory,
/// reachable only through a Unix socket in that directory (`listen_addresses = ''`), durable
/// (`fsync` and `synchronous_commit` on, unless a test asks otherwise), with a role and a
/// database for the daemon that log in with a password (scram-sha-256), so that password
/// handling is exercised. `stop()`, or the end of the last reference, stops it with
/// `pg_ctl stop -m immediate` and deletes the directory, also when the test failed.
///
/// PostgreSQL refuses to run as root. As root (CI, `make test`), every PostgreSQL program runs
/// as the unprivileged user `postgres` that Debian's postgresql package creates (through
/// `setpriv`), and the directory is that user's, mode 0700; otherwise as the test's own user.
/// The superuser, named after that user, logs in only by peer authentication, which is how the
/// helpers below (`psql`) reach it. Without PostgreSQL 15 the constructor throws: these tests
/// fail, never skip (scripts/setup.sh installs it).
///
/// A cluster whose test process died without stopping it is stopped and deleted by the next
/// test process that starts one (`reapAbandoned`).
public final class ThrowawayPostgres: @unchecked Sendable {
    public struct Settings: Sendable {
        public var fsync: Bool
        public var synchronousCommit: String
        public var fullPageWrites: Bool
        /// Also listen on 127.0.0.1 (a free port), TLS only (`hostssl`), with a server
        /// certificate for the name `localhost` only (no IP address) from a CA made for this
        /// cluster (`caFile`).
        public var tls: Bool
        /// Also listen on 127.0.0.1 (a free port) without TLS (`host`, `ssl = off`): a server
        /// that a client requiring TLS must refuse.
        public var plainTCP: Bool
        public init(
            fsync: Bool = true, synchronousCommit: String = "on", fullPageWrites: Bool = true, tls: Bool = false, plainTCP: Bool = false
        ) {
            self.fsync = fsync
            self.synchronousCommit = synchronousCommit
            self.fullPageWrites = fullPageWrites
            self.tls = tls
            self.plainTCP = plainTCP
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Debian's PostgreSQL 15 programs.
    public static let binDirectory = "/usr/lib/postgresql/15/bin"
    /// The user PostgreSQL runs as when the tests run as root.
    public static let unprivilegedUser = "postgres"
    /// The port of a cluster without TCP: it names the socket, `directory/.s.PGSQL.5432`.
    public static let socketOnlyPort = 5432
    static let directoryPrefix = "anonreg-pg-"

    /// The cluster's directory: the cluster user's, mode 0700. Holds `data/`, the socket and
    /// `server.log`.
    public let directory: String
    /// The Unix socket directory (the cluster's directory).
    public var socketDirectory: String { directory }
    /// The test user's own directory inside it, mode 0700: the password file and scratch files.
    public let clientDirectory: String
    /// The daemon's role and database (the role owns the database).
    public let user = "anonreg"
    public let database = "anonreg"
    /// The role's password, in a file owned by the test's user with mode 0600.
    public let passwordFile: String
    /// The port: `socketOnlyPort`, or with `tls` the free TCP port on 127.0.0.1 it also listens on
    /// (the socket is then `directory/.s.PGSQL.<port>`).
    public let port: Int
    /// With `tls`: the PEM certificate of the CA that signed the server's certificate, and of
    /// another CA that signed nothing of this cluster's.
    public let caFile: String
    public let unrelatedCAFile: String

    let superuser: String
    /// The uid and gid PostgreSQL runs as, when that is not the test's own user.
    let runAs: (uid: uid_t, gid: gid_t)?
    private let state = NSLock()
    private var stopped = false

    /// Starts a cluster, creates the role and the database. Throws a `Failure` that says what is
    /// missing when PostgreSQL is not installed.
    public init(_ settings: Settings = Settings()) throws {
        for tool in ["initdb", "pg_ctl", "postgres", "psql"] {
            let path = Self.binDirectory + "/" + tool
            guard access(path, X_OK) == 0 else {
                throw Failure(
                    "PostgreSQL 15 is not installed: \(path) is missing. scripts/setup.sh installs Debian's postgresql "
                        + "package (make test runs it); the PostgreSQL backend's tests need it and do not skip")
            }
        }
        if geteuid() == 0 {
            guard let entry = getpwnam(Self.unprivilegedUser) else {
                throw Failure(
                    "running as root, PostgreSQL must run as the unprivileged user \(Self.unprivilegedUser), which Debian's "
                        + "postgresql package creates; there is no such user (run scripts/setup.sh)")
            }
            runAs = (entry.pointee.pw_uid, entry.pointee.pw_gid)
            superuser = Self.unprivilegedUser
        } else {
            runAs = nil
            guard let entry = getpwuid(geteuid()) else { throw Failure("the test's uid \(geteuid()) has no passwd entry") }
            superuser = String(cString: entry.pointee.pw_name)
        }
        Self.reapAbandoned()

        var template = Array("/tmp/\(Self.directoryPrefix)XXXXXX".utf8CString)
        guard template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) != nil else {
            throw Failure("mkdtemp failed: \(String(cString: strerror(errno)))")
        }
        directory = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
        clientDirectory = directory + "/client"
        passwordFile = clientDirectory + "/password"
        caFile = clientDirectory + "/ca.crt"
        unrelatedCAFile = clientDirectory + "/unrelated-ca.crt"
        do {
            port = settings.tls || settings.plainTCP ? try Self.freeLoopbackPort() : Self.socketOnlyPort
        } catch {
            Self.stopAndDelete(directory: directory, runAs: runAs)
            throw error
        }
        do {
            try setUp(settings)
        } catch {
            stop()
            throw error
        }
    }

    deinit { stop() }

    private func setUp(_ settings: Settings) throws {
        guard mkdir(clientDirectory, 0o700) == 0 else { throw Failure("mkdir \(clientDirectory) failed") }
        // Who started the cluster, for `reapAbandoned`: this process and its start time.
        try Data("\(getpid()) \(Self.startTime(of: getpid()) ?? "")\n".utf8).write(to: URL(fileURLWithPath: clientDirectory + "/owner"))
        if let runAs {
            guard chown(directory, runAs.uid, runAs.gid) == 0 else { throw Failure("chown \(directory) failed") }
        }
        guard chmod(directory, 0o700) == 0 else { throw Failure("chmod \(directory) failed") }

        var random = SystemRandomNumberGenerator()
        let password = (0..<24).map { _ in String(format: "%02x", UInt8.random(in: 0...255, using: &random)) }.joined()
        FileManager.default.createFile(atPath: passwordFile, contents: Data((password + "\n").utf8), attributes: [.posixPermissions: 0o600])
        chmod(passwordFile, 0o600)

        let data = directory + "/data"
        try runChecked(
            "initdb",
            ["-D", data, "-U", superuser, "--auth-local=peer", "--auth-host=reject", "--no-locale", "--encoding=UTF8", "--no-sync"])
        let conf = """

            # ThrowawayPostgres (Tests/AnonregTestSupport)
            listen_addresses = '\(settings.tls || settings.plainTCP ? "127.0.0.1" : "")'
            unix_socket_directories = '\(directory)'
            port = \(port)
            fsync = \(settings.fsync ? "on" : "off")
            synchronous_commit = \(settings.synchronousCommit)
            full_page_writes = \(settings.fullPageWrites ? "on" : "off")
            password_encryption = 'scram-sha-256'
            shared_buffers = 16MB
            max_connections = 40
            logging_collector = off

            """
        try append(conf, to: data + "/postgresql.conf")
        // The superuser by peer authentication (the helpers); everyone else by password, and
        // over TCP only with TLS.
        var hba = "local all \(superuser) peer\nlocal all all scram-sha-256\n"
        if settings.tls {
            try makeCertificates(data: data)
            try append("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n", to: data + "/postgresql.conf")
            hba += "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        } else if settings.plainTCP {
            hba += "host all all 127.0.0.1/32 scram-sha-256\n"
        }
        try Data(hba.utf8).write(to: URL(fileURLWithPath: data + "/pg_hba.conf"))
        try runChecked("pg_ctl", ["-D", data, "-l", directory + "/server.log", "-w", "-t", "60", "-s", "start"])
        try psql(
            """
            CREATE ROLE \(user) LOGIN PASSWORD '\(password)';
            CREATE DATABASE \(database) OWNER \(user);
            """)
    }

    /// A CA, a server certificate it signs for DNS name localhost (P-256), and an unrelated CA, made with
    /// openssl in the client directory; the server's key and certificate are copied into the
    /// data directory as the server's user, key mode 0600, as PostgreSQL requires.
    private func makeCertificates(data: String) throws {
        let c = clientDirectory
        let curve = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        let caExtensions = ["-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"]
        try Data("subjectAltName=DNS:localhost\nbasicConstraints=critical,CA:FALSE\nextendedKeyUsage=serverAuth\n".utf8)
            .write(to: URL(fileURLWithPath: c + "/server.ext"))
        for (name, out) in [("anonreg test CA", "ca"), ("unrelated test CA", "unrelated-ca")] {
            try openssl(
                ["req", "-x509"] + curve + ["-keyout", "\(c)/\(out).key", "-out", "\(c)/\(out).crt", "-days", "2", "-subj", "/CN=\(name)"]
                    + caExtensions)
        }
        try openssl(["req"] + curve + ["-keyout", c + "/server.key", "-out", c + "/server.csr", "-subj", "/CN=localhost"])
        try openssl([
            "x509", "-req", "-in", c + "/server.csr", "-CA", caFile, "-CAkey", c + "/ca.key", "-CAcreateserial", "-out", c + "/server.crt",
            "-days", "2", "-extfile", c + "/server.ext",
        ])
        for (file, mode) in [("server.crt", mode_t(0o644)), ("server.key", mode_t(0o600))] {
            let target = data + "/" + file
            try FileManager.default.copyItem(atPath: c + "/" + file, toPath: target)
            if let runAs { guard chown(target, runAs.uid, runAs.gid) == 0 else { throw Failure("chown \(target) failed") } }
            guard chmod(target, mode) == 0 else { throw Failure("chmod \(target) failed") }
        }
    }

    private func openssl(_ arguments: [String]) throws {
        let output = clientDirectory + "/openssl-\(UUID().uuidString).out"
        defer { unlink(output) }
        let status = try Spawned.start("/usr/bin/openssl", arguments, environment: ["PATH": "/usr/bin:/bin"], stdout: output).wait()
        guard status == 0 else {
            throw Failure(
                "openssl \(arguments.first ?? "") failed (\(status)): \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        }
    }

    /// A TCP port on 127.0.0.1 that nothing listens on now (the kernel's choice for port 0).
    static func freeLoopbackPort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure("socket failed") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        guard bound else { throw Failure("no free port on 127.0.0.1: \(String(cString: strerror(errno)))") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Stops the server at once and deletes the directory. Safe to call more than once.
    public func stop() {
        state.lock()
        defer { state.unlock() }
        guard !stopped else { return }
        stopped = true
        Self.stopAndDelete(directory: directory, runAs: runAs)
    }

    /// Runs SQL as the superuser (peer authentication) in `database` (default: the daemon's),
    /// with `ON_ERROR_STOP`; returns what psql printed (unaligned, tuples only). Throws with
    /// psql's message when a statement fails.
    @discardableResult
    public func psql(_ sql: String, database: String? = nil) throws -> String {
        let id = UUID().uuidString
        let input = clientDirectory + "/\(id).sql"
        let output = clientDirectory + "/\(id).out"
        defer {
            unlink(input)
            unlink(output)
        }
        try Data(sql.utf8).write(to: URL(fileURLWithPath: input))
        let status = try run(
            "psql",
            [
                "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory, "-p", "\(port)", "-U", superuser,
                "-d", database ?? "postgres",
            ],
            stdin: input, output: output)
        let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        guard status == 0 else { throw Failure("psql failed (\(status)): \(printed)") }
        return printed.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs `sql` as the superuser in a psql of its own that keeps running (a session holding a
    /// lock, say) until the returned process is killed.
    public func session(_ sql: String, database: String? = nil) throws -> Spawned {
        let input = clientDirectory + "/session-\(UUID().uuidString).sql"
        try Data(sql.utf8).write(to: URL(fileURLWithPath: input))
        let arguments = [
            "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", directory, "-p", "\(port)", "-U", superuser, "-d",
            database ?? self.database,
        ]
        let program = Self.binDirectory + "/psql"
        let environment = ["PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": directory]
        if let runAs {
            return try Spawned.start(
                "/usr/bin/setpriv", ["--reuid=\(runAs.uid)", "--regid=\(runAs.gid)", "--clear-groups", "--", program] + arguments,
                environment: environment, stdin: input)
        }
        return try Spawned.start(program, arguments, environment: environment, stdin: input)
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, every
    /// session cut), keeps it down for `down`, and starts it again on the same data directory,
    /// which replays its WAL: what a restart of a database host looks like to its clients.
    public func crashAndRestart(down: Duration) throws {
        let data = directory + "/data"
        try runChecked("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "60", "-s", "stop"])
        let seconds = Double(down.components.seconds) + Double(down.components.attoseconds) / 1e18
        usleep(useconds_t(seconds * 1_000_000))
        try runChecked("pg_ctl", ["-D", data, "-l", directory + "/server.log", "-w", "-t", "60", "-s", "start"])
    }

    /// Dumps `database` (default: the daemon's) with pg_dump as the superuser, in the custom
    /// format, as a database administrator's nightly dump would; returns the file.
    public func dump(_ database: String? = nil) throws -> String {
        let path = clientDirectory + "/dump-\(UUID().uuidString).pgdump"
        let status = try run(
            "pg_dump", ["-h", directory, "-p", "\(port)", "-U", superuser, "-Fc", database ?? self.database], output: path)
        guard status == 0 else { throw Failure("pg_dump failed (\(status)): \(serverLog())") }
        return path
    }

    /// Replaces `database` (default: the daemon's) with the dump at `path`: drops it (closing
    /// its sessions), creates it again for the daemon's role, and runs pg_restore as the
    /// superuser, which gives every object back to its owner.
    public func restore(_ path: String, database: String? = nil) throws {
        let name = database ?? self.database
        try psql("DROP DATABASE \(name) WITH (FORCE);")
        try createDatabase(name)
        let output = clientDirectory + "/restore-\(UUID().uuidString).out"
        defer { unlink(output) }
        let status = try run(
            "pg_restore", ["-h", directory, "-p", "\(port)", "-U", superuser, "-d", name, "--exit-on-error"], stdin: path, output: output)
        guard status == 0 else {
            throw Failure("pg_restore failed (\(status)): \((try? String(contentsOfFile: output, encoding: .utf8)) ?? "")")
        }
    }

    /// Creates another database owned by `owner` (default: the daemon's role).
    public func createDatabase(_ name: String, owner: String? = nil) throws {
        try psql("CREATE DATABASE \(name) OWNER \(owner ?? user);")
    }

    /// Writes a file owned by the test's user, mode 0600, in the client directory.
    public func writeClientFile(_ name: String, _ contents: String, mode: mode_t = 0o600) -> String {
        let path = clientDirectory + "/" + name
        FileManager.default.createFile(atPath: path, contents: Data(contents.utf8), attributes: [.posixPermissions: Int(mode)])
        chmod(path, mode)
        return path
    }

    /// The server's log so far (for failure messages).
    public func serverLog() -> String {
        (try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? ""
    }

    private func append(_ text: String, to path: String) throws {
        guard let handle = FileHandle(forWritingAtPath: path) else { throw Failure("cannot open \(path)") }
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: Data(text.utf8))
    }

    private func runChecked(_ tool: String, _ arguments: [String]) throws {
        let output = clientDirectory + "/\(tool)-\(UUID().uuidString).out"
        defer { unlink(output) }
        let status = try run(tool, arguments, output: output)
        guard status == 0 else {
            let printed = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            throw Failure("\(tool) failed (\(status)): \(printed)\n\(serverLog())")
        }
    }

    func run(_ tool: String, _ arguments: [String], stdin: String? = nil, output: String? = nil) throws -> Int32 {
        try Self.run(tool, arguments, runAs: runAs, home: directory, stdin: stdin, output: output)
    }

    static func run(
        _ tool: String, _ arguments: [String], runAs: (uid: uid_t, gid: gid_t)?, home: String, stdin: String? = nil,
        output: String? = nil
    ) throws -> Int32 {
        let program = binDirectory + "/" + tool
        let environment = ["PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": home]
        let spawned =
            if let runAs {
                try Spawned.start(
                    "/usr/bin/setpriv", ["--reuid=\(runAs.uid)", "--regid=\(runAs.gid)", "--clear-groups", "--", program] + arguments,
                    environment: environment, stdout: output, stdin: stdin)
            } else {
                try Spawned.start(program, arguments, environment: environment, stdout: output, stdin: stdin)
            }
        return spawned.wait()
    }

    /// `pg_ctl stop -m immediate`, then SIGKILL to a postmaster that is still there, then the
    /// directory goes.
    static func stopAndDelete(directory: String, runAs: (uid: uid_t, gid: gid_t)?) {
        let data = directory + "/data"
        if FileManager.default.fileExists(atPath: data + "/postmaster.pid") {
            let status = try? run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "-t", "30", "-s", "stop"], runAs: runAs, home: directory)
            if status != 0, let text = try? String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8),
                let pid = text.split(separator: "\n").first.flatMap({ pid_t($0) }), pid > 0
            {
                kill(pid, SIGKILL)
            }
        }
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Field 22 of /proc/PID/stat (start time in clock ticks since boot), which tells a process
    /// from a later one that reused its pid.
    static func startTime(of pid: pid_t) -> String? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8), let close = stat.lastIndex(of: ")") else {
            return nil
        }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        // After ")": state is field 3, so start time (field 22) is the 20th.
        return fields.count > 19 ? String(fields[19]) : nil
    }

    /// Once per test process (a static `let` is initialised once, thread-safely): stops and
    /// deletes the clusters of test processes that are gone.
    static func reapAbandoned() { _ = reapedOnce }

    private static let reapedOnce: Void = reapAbandonedNow()

    private static func reapAbandonedNow() {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/tmp") else { return }
        for name in names where name.hasPrefix(directoryPrefix) {
            let directory = "/tmp/" + name
            guard let owner = try? String(contentsOfFile: directory + "/client/owner", encoding: .utf8) else { continue }
            let fields = owner.split(whereSeparator: \.isWhitespace)
            guard let pid = fields.first.flatMap({ pid_t($0) }) else { continue }
            let alive = startTime(of: pid).map { fields.count > 1 && $0 == fields[1] } ?? false
            guard !alive else { continue }
            var st = stat()
            guard stat(directory, &st) == 0 else { continue }
            let runAs: (uid: uid_t, gid: gid_t)? = st.st_uid == geteuid() ? nil : (st.st_uid, st.st_gid)
            stopAndDelete(directory: directory, runAs: runAs)
        }
    }
}
