import Foundation

/// Where and as whom anonregd reaches its PostgreSQL database (docs/STORAGE.md §PostgreSQL).
/// The password is never a setting: it is read from `passwordFile`, a file only the daemon's
/// user can read, so it appears on no command line, in no environment and in no config file.
public struct PostgresConfig: Sendable, Equatable {
    /// How to reach the server.
    public enum Endpoint: Sendable, Equatable {
        /// A Unix socket: the server's socket directory (libpq's `host=/dir`) and port, which names
        /// the socket file `directory/.s.PGSQL.<port>`.
        case unixSocket(directory: String, port: Int)
        /// TCP, always with TLS, verifying the server's certificate and name ("verify-full")
        /// against the CA certificates in `caFile` (PEM). Without a CA file this is a
        /// configuration error: anonreg never sends a password or a record over plain TCP.
        case tcp(host: String, port: Int, caFile: String?)
    }

    public var endpoint: Endpoint
    public var database: String
    public var user: String
    /// A regular file, mode 0600 or stricter, owned by the user anonregd runs as, holding the
    /// password on its one line (a final newline is allowed).
    public var passwordFile: String
    /// How long the first connection (and the first lease of the pool) may take before the start
    /// fails as unreachable.
    public var connectTimeout: Duration
    /// The pool's largest number of connections.
    public var maximumConnections: Int

    /// PostgreSQL's default port, as libpq's.
    public static let defaultPort = 5432

    public init(
        endpoint: Endpoint, database: String, user: String, passwordFile: String,
        connectTimeout: Duration = .seconds(10), maximumConnections: Int = 8
    ) {
        self.endpoint = endpoint
        self.database = database
        self.user = user
        self.passwordFile = passwordFile
        self.connectTimeout = connectTimeout
        self.maximumConnections = maximumConnections
    }

    /// The Unix socket file of a `.unixSocket` endpoint.
    public static func socketPath(directory: String, port: Int) -> String {
        (directory.hasSuffix("/") ? String(directory.dropLast()) : directory) + "/.s.PGSQL.\(port)"
    }

    /// The endpoint as messages name it: the socket file, or host:port.
    public var endpointDescription: String {
        switch endpoint {
        case .unixSocket(let directory, let port): return Self.socketPath(directory: directory, port: port)
        case .tcp(let host, let port, _): return "\(host):\(port) (TLS)"
        }
    }

    /// PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes; a longer name would silently
    /// name something else.
    static let identifierBytes = 63
    /// `sun_path` holds 108 bytes with the terminating NUL.
    static let socketPathBytes = 107

    /// Refuses settings that cannot work, before anything is contacted.
    public func validate() throws(PostgresBackendError) {
        for (name, value) in [("database", database), ("user", user)] {
            guard !value.isEmpty, value.utf8.count <= Self.identifierBytes, !value.utf8.contains(0) else {
                throw .configuration("\(name) must be 1 to \(Self.identifierBytes) bytes without NUL, not \"\(value)\"")
            }
        }
        guard passwordFile.hasPrefix("/") else {
            throw .configuration("password_file must be an absolute path, not \"\(passwordFile)\"")
        }
        guard connectTimeout > .zero else { throw .configuration("connect_timeout must be positive") }
        guard maximumConnections >= 1 else { throw .configuration("maximum_connections must be at least 1") }
        switch endpoint {
        case .unixSocket(let directory, let port):
            guard directory.hasPrefix("/") else {
                throw .configuration("socket_directory must be an absolute path, not \"\(directory)\"")
            }
            try Self.checkPort(port)
            let path = Self.socketPath(directory: directory, port: port)
            guard path.utf8.count <= Self.socketPathBytes else {
                throw .configuration(
                    "the socket path \(path) is longer than \(Self.socketPathBytes) bytes, the most a Unix socket address holds")
            }
        case .tcp(let host, let port, let caFile):
            guard !host.isEmpty else { throw .configuration("host must not be empty") }
            try Self.checkPort(port)
            guard let caFile else {
                throw .configuration(
                    "a TCP connection to \(host):\(port) needs ca_file: anonreg connects over TCP only with TLS, "
                        + "verifying the server's certificate and name against that CA (or use socket_directory)")
            }
            guard caFile.hasPrefix("/") else { throw .configuration("ca_file must be an absolute path, not \"\(caFile)\"") }
            var st = stat()
            guard stat(caFile, &st) == 0, st.st_mode & S_IFMT == S_IFREG, access(caFile, R_OK) == 0 else {
                throw .configuration("ca_file \(caFile) is not a readable regular file")
            }
        }
    }

    static func checkPort(_ port: Int) throws(PostgresBackendError) {
        guard (1...65535).contains(port) else { throw .configuration("port must be 1 to 65535, not \(port)") }
    }
}

/// The password file's rules and reading (docs/STORAGE.md §PostgreSQL).
enum PasswordFile {
    /// A password longer than this is a wrong file, not a password.
    static let maximumBytes = 1024

    /// The password on the file's one line. The file is opened without following a symbolic
    /// link and checked on the open descriptor, so what is checked is what is read.
    static func read(_ path: String) throws(PostgresBackendError) -> String {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        guard fd >= 0 else {
            let code = errno
            let reason =
                switch code {
                case ELOOP: "it is a symbolic link; name the file itself"
                case ENOENT: "it does not exist"
                case EACCES: "the user anonreg runs as (uid \(geteuid())) cannot read it"
                default: String(cString: strerror(code))
                }
            throw .passwordFile(path: path, reason: reason)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .passwordFile(path: path, reason: String(cString: strerror(errno))) }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw .passwordFile(path: path, reason: "it is not a regular file")
        }
        let mode = st.st_mode & 0o7777
        guard mode & 0o077 == 0 else {
            throw .passwordFile(
                path: path,
                reason: "its mode is \(String(format: "%04o", mode)), so other users may read it; it must be 0600 or stricter (chmod 0600)")
        }
        guard st.st_uid == geteuid() else {
            throw .passwordFile(path: path, reason: "it is owned by uid \(st.st_uid), not by the user anonreg runs as (uid \(geteuid()))")
        }
        guard st.st_size <= maximumBytes else {
            throw .passwordFile(path: path, reason: "it is \(st.st_size) bytes; a password file holds one line of at most \(maximumBytes)")
        }
        var bytes = [UInt8](repeating: 0, count: maximumBytes + 1)
        var count = 0
        while count < bytes.count {
            let n = bytes.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw .passwordFile(path: path, reason: String(cString: strerror(errno))) }
            if n == 0 { break }
            count += n
        }
        var line = Array(bytes[..<count])
        defer {
            for i in line.indices { line[i] = 0 }
            for i in bytes.indices { bytes[i] = 0 }
        }
        if line.last == UInt8(ascii: "\n") { line.removeLast() }
        if line.last == UInt8(ascii: "\r") { line.removeLast() }
        guard !line.isEmpty else { throw .passwordFile(path: path, reason: "it is empty") }
        guard !line.contains(UInt8(ascii: "\n")), !line.contains(UInt8(ascii: "\r")), !line.contains(0) else {
            throw .passwordFile(path: path, reason: "it holds more than one line; the password is its only line")
        }
        guard let password = String(validating: line, as: UTF8.self) else {
            throw .passwordFile(path: path, reason: "it is not UTF-8 text")
        }
        return password
    }
}
