internal import CAnonregLinux
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The service user that owns the state directory and runs anonregd (`daemon.user` in
/// anonreg.toml, `User=anonreg` in the unit). Root's offline commands work as this user, a
/// state directory it cannot read is refused, and no clinic may be this user or its group
/// (docs/OPERATIONS.md §Root and the offline commands).
public struct ServiceUser: Sendable, Equatable, CustomStringConvertible {
    public var name: String?
    public var uid: UInt32
    public var gid: UInt32

    public init(name: String?, uid: UInt32, gid: UInt32) {
        self.name = name
        self.uid = uid
        self.gid = gid
    }

    /// A user name or a numeric uid, looked up in the user database. Nil when this host has no
    /// such user (a configuration checked in a packaging root, or a name mistyped).
    public static func resolve(_ spec: String) -> ServiceUser? {
        if let uid = UInt32(spec) {
            guard let entry = lookup(uid: uid) else { return ServiceUser(name: nil, uid: uid, gid: uid) }
            return entry
        }
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwnam_r(spec, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return ServiceUser(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid)
    }

    /// The account with `uid`, if this host has one.
    public static func lookup(uid: UInt32) -> ServiceUser? {
        var entry = passwd()
        var result: UnsafeMutablePointer<passwd>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getpwuid_r(uid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return nil }
        return ServiceUser(name: String(cString: entry.pw_name), uid: entry.pw_uid, gid: entry.pw_gid)
    }

    /// `anonreg (uid 998)`, or `uid 61001` for an id with no account.
    public var description: String { name.map { "\($0) (uid \(uid))" } ?? "uid \(uid)" }

    /// How chown and install name the account: its name, or the bare uid.
    public var account: String { name ?? String(uid) }

    /// How chown and install name its primary group: the group's name, or the bare gid.
    public var group: String {
        var entry = Glibc.group()
        var result: UnsafeMutablePointer<Glibc.group>? = nil
        var buffer = [CChar](repeating: 0, count: 16384)
        guard getgrgid_r(gid, &entry, &buffer, buffer.count, &result) == 0, result != nil else { return String(gid) }
        return String(cString: entry.gr_name)
    }
}

/// Root running an offline command on a state directory that another user owns works as that
/// owner, so that every file it writes stays readable by the daemon (docs/OPERATIONS.md §Root
/// and the offline commands). Input files only root can read are opened before the drop.
public enum StateOwner {
    public enum Refusal: Error, Equatable, CustomStringConvertible {
        /// The state directory belongs to root while the configuration names another service user.
        case rootOwned(path: String, serviceUser: ServiceUser)
        /// It belongs to one user while the configuration names another.
        case otherOwner(path: String, owner: UInt32, serviceUser: ServiceUser)
        /// It does not exist, and root would create it as root's while the configuration names
        /// another service user.
        case missing(path: String, serviceUser: ServiceUser)
        case dropFailed(step: String, errno: Int32)

        public var description: String {
            switch self {
            case .rootOwned(let path, let user):
                "\(path) belongs to root, but anonreg.toml names the service user \(user), which runs anonregd and could "
                    + "not read it. Give it back to the service user (chown -R \(user.account): \(path)) "
                    + "and run the command again as root: anonreg then works as that user"
            case .otherOwner(let path, let owner, let user):
                "\(path) belongs to uid \(owner), but anonreg.toml names the service user \(user); anonregd, running as "
                    + "\(user), could not use it. Check daemon.user and the owner of \(path)"
            case .missing(let path, let user):
                "\(path) does not exist. anonreg.toml names the service user \(user), which must own it: create it as "
                    + "the service's (systemd-tmpfiles --create anonreg.conf, or install -d -m 0750 -o \(user.account) "
                    + "-g \(user.group) \(path)) "
                    + "and run the command again as root; nothing was written"
            case .dropFailed(let step, let code):
                "could not switch to the state directory's owner (\(step) failed: \(String(cString: strerror(code)))); nothing was done"
            }
        }
    }

    /// When the process is root and `stateDirectory` exists and belongs to another user, switches
    /// for good to that user and its group: setgroups, then setresgid, then setresuid. Returns the
    /// one line to print on stderr, or nil when nothing changed. Refuses a state directory that
    /// cannot be the service's (`serviceUser` from the configuration).
    public static func workAsOwner(of stateDirectory: String, serviceUser: ServiceUser?) throws(Refusal) -> String? {
        guard let owner = try prospectiveOwner(of: stateDirectory, serviceUser: serviceUser) else { return nil }
        try drop(to: owner)
        return "anonreg: working as \(owner), the owner of \(stateDirectory)"
    }

    /// The user `workAsOwner` would switch to, with the same refusals, switching nothing: nil
    /// when the process is not root or the directory is root's (or not there yet). A command
    /// that must do something as root first (`backup scheduled` sends its request as the admin
    /// uid) checks with this before it starts.
    public static func prospectiveOwner(of stateDirectory: String, serviceUser: ServiceUser?) throws(Refusal) -> ServiceUser? {
        guard geteuid() == 0 else { return nil }
        var st = stat()
        guard stat(stateDirectory, &st) == 0 else {
            // Not there yet: root may create a trial directory, never the service's.
            if errno == ENOENT, let serviceUser, serviceUser.uid != 0 {
                throw .missing(path: stateDirectory, serviceUser: serviceUser)
            }
            return nil
        }
        if st.st_uid == 0 {
            if let serviceUser, serviceUser.uid != 0 { throw .rootOwned(path: stateDirectory, serviceUser: serviceUser) }
            return nil
        }
        if let serviceUser, serviceUser.uid != st.st_uid {
            throw .otherOwner(path: stateDirectory, owner: st.st_uid, serviceUser: serviceUser)
        }
        return serviceUser ?? ServiceUser.lookup(uid: st.st_uid) ?? ServiceUser(name: nil, uid: st.st_uid, gid: st.st_gid)
    }

    /// setgroups (only the user's own group), setresgid, setresuid; then checks that root cannot
    /// be regained.
    static func drop(to user: ServiceUser) throws(Refusal) {
        var groups = [gid_t(user.gid)]
        guard setgroups(1, &groups) == 0 else { throw .dropFailed(step: "setgroups", errno: errno) }
        guard anonreg_setresgid(user.gid) == 0 else { throw .dropFailed(step: "setresgid", errno: errno) }
        guard anonreg_setresuid(user.uid) == 0 else { throw .dropFailed(step: "setresuid", errno: errno) }
        var r: UInt32 = 0
        var e: UInt32 = 0
        var s: UInt32 = 0
        guard anonreg_getresuid(&r, &e, &s) == 0, r == user.uid, e == user.uid, s == user.uid, setuid(0) != 0 else {
            throw .dropFailed(step: "the check that root cannot be regained", errno: EPERM)
        }
    }

    /// The service user of the configuration that serves `stateDirectory`: `$ANONREG_CONFIG`,
    /// else /etc/anonreg/anonreg.toml, when its `daemon.state_dir` (or `keys_dir`) is that
    /// directory and it names `daemon.user`. Nil otherwise (a trial directory of `anonreg init`).
    public static func serviceUser(
        forStateDirectory stateDirectory: String, keysDirectory: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> ServiceUser? {
        guard
            let config = configuration(forStateDirectory: stateDirectory, keysDirectory: keysDirectory, environment: environment),
            let spec = config.serviceUserSpec
        else { return nil }
        return ServiceUser.resolve(spec)
    }

    /// The installed configuration that serves `stateDirectory`: `$ANONREG_CONFIG`, else
    /// /etc/anonreg/anonreg.toml, when it loads and its `daemon.state_dir` (or `keys_dir`) is
    /// that directory. Nil otherwise.
    public static func configuration(
        forStateDirectory stateDirectory: String, keysDirectory: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> DaemonConfig? {
        let path = environment["ANONREG_CONFIG"].flatMap { $0.isEmpty ? nil : $0 } ?? "/etc/anonreg/anonreg.toml"
        guard let config = try? DaemonConfig.load(path: path) else { return nil }
        func same(_ a: String, _ b: String) -> Bool {
            URL(fileURLWithPath: a).standardizedFileURL.resolvingSymlinksInPath().path
                == URL(fileURLWithPath: b).standardizedFileURL.resolvingSymlinksInPath().path
        }
        guard same(config.stateDirectory, stateDirectory) || keysDirectory.map({ same(config.keysDirectory, $0) }) == true else {
            return nil
        }
        return config
    }
}
