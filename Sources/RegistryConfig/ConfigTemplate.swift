import RegistryCore

/// The commented `anonreg.toml` that `anonreg init` writes.
public enum ConfigTemplate {
    /// The template for a state directory made by `anonreg init`: the socket inside it, and the
    /// calling uid as admin and as clinic `local`.
    public static func render(stateDirectory: String, uid: UInt32) -> String {
        render(
            stateDirectory: stateDirectory, socketPath: stateDirectory + "/anonreg.sock", adminUIDs: [uid], localClinicUID: uid,
            serviceUser: nil)
    }

    /// The general template; `make install` writes the system one (socket in /run/anonreg, admin
    /// root, no clinic yet).
    public static func render(
        stateDirectory: String, socketPath: String, adminUIDs: [UInt32], localClinicUID: UInt32?,
        serviceUser: String?
    ) -> String {
        let user =
            serviceUser.map { name in
                """
                # The service user that owns the state directory and runs anonregd (User= in the unit).
                # Root's offline commands (backup restore, keys backup, ...) work as this user.
                user = "\(name)"
                """
            } ?? """
                # The service user that owns the state directory and runs anonregd. Unset here: the
                # user who ran `anonreg init` runs it.
                # user = "anonreg"
                """
        let clinics =
            localClinicUID.map { uid in
                """
                [clinics.local]
                uids = [\(uid)]
                gids = []
                """
            } ?? """
                # [clinics.north]
                # uids = [1201]
                # gids = []
                """
        func list(_ values: [String]) -> String { "[" + values.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        func category(_ name: String, _ p: Policy, _ note: String) -> String {
            """
            # \(note)
            [categories.\(name)]
            # Days between check-ups; a case is due this many days after its latest check-up.
            checkup_interval_days = \(p.checkupIntervalDays)
            # Days of continuous remission that end monitoring.
            remission_days = \(p.remissionDays)
            # What a relapse does: "restart" the remission clock, "extend" the requirement by
            # relapse_extend_days, or leave it to the "clinician" (each relapse check-up says which).
            relapse = "\(p.relapse.rawValue)"
            # Days a relapse adds under "extend" (or a clinician's "extend").
            relapse_extend_days = \(p.relapseExtendDays)
            # Hard cap on monitoring, counted from enrolment: the subject is erased then, whatever else.
            cap_days = \(p.capDays)
            # Days after the due date before a case counts as overdue.
            overdue_after_days = \(p.overdueAfterDays)

            """
        }
        return """
            # anonreg.toml: configuration of anonregd. Every key is described in docs/OPERATIONS.md.
            # SIGHUP (systemctl reload anonregd) applies changes, except the [daemon] paths, which
            # need a restart.

            [daemon]
            # Unix socket that clinic systems and the CLI connect to.
            socket = "\(socketPath)"
            # Mode of the socket file: owner and group may connect, others may not.
            socket_mode = "0660"
            # State directory: holds the database (registry.sqlite).
            state_dir = "\(stateDirectory)"
            # Keys directory: mode 0700, key files 0600 (docs/CRYPTO.md §Keyring).
            keys_dir = "\(stateDirectory)/keys"
            # Log level: trace, debug, info, notice, warning, error or critical.
            log_level = "info"
            # MiB kept in STATE_DIR/.space-reserve. On a full disk the daemon deletes it so reads
            # can still be audited, refuses data writes until space returns, then recreates it.
            # 0 disables the reserve (reads then fail with the writes on a full disk).
            space_reserve_mib = 8
            \(user)

            [access]
            # Peers with these uids are registry admins (keys, sweeps, audit, statistics, metrics).
            admin_uids = [\(adminUIDs.map(String.init).joined(separator: ", "))]
            # Peers with these uids may read aggregate statistics and nothing else.
            statistician_uids = []
            # Peers with these uids may read GET /metrics and GET /v1/health, nothing else (a
            # local Prometheus agent; docs/OPERATIONS.md §Metrics).
            monitor_uids = []

            # One table per clinic: connections from these uids (or primary gids) act as that clinic.
            # `anonreg clinics add ID --uid UID` adds one; reload the daemon to apply.
            \(clinics)

            [rate_limits]
            # OPRF evaluations per clinic: a token bucket refilled at this many per minute ...
            oprf_per_minute = 120
            # ... holding at most this many at once. Each element of a batch takes one token, so a
            # batch may hold at most this many elements (and never more than 100).
            oprf_burst = 100

            [limits]
            # What one peer may take of the daemon (docs/ROBUSTNESS.md §Resource limits; sizing:
            # docs/OPERATIONS.md §Sizing the limits). Open connections, all peers together; lowered
            # at start to what RLIMIT_NOFILE leaves after fd_reserve ...
            max_connections = 1024
            # ... of one uid ...
            max_connections_per_peer = 64
            # ... and of all peers that are no clinic, admin or statistician, together.
            max_unknown_connections = 16
            # File descriptors kept for the database, WAL, keyring, ledger, backups and runtime.
            fd_reserve = 256
            # Seconds a request may take to arrive, headers and body (408 request_timeout after).
            request_seconds = 30
            # Repeated refusals become one audit entry and one log line per this many seconds.
            refusal_summary_seconds = 60
            # Each clinic's data writes (enrol, link, check-up, code, withdraw, anonymous episode)
            # per minute, and how many may come at once (429 rate_limited with Retry-After) ...
            writes_per_minute = 1200
            write_burst = 300
            # ... and its data reads (status, check-ups, self-access, due list).
            reads_per_minute = 3000
            read_burst = 600
            # A clinic may have budgets of its own:
            # [limits.clinics.north]
            # writes_per_minute = 6000
            # write_burst = 1000

            [audit]
            # A signed checkpoint of the audit log every this many entries ...
            checkpoint_every = 1000
            # ... and at least every this many minutes, and on shutdown.
            checkpoint_minutes = 10
            # Days to keep audit entries (pruned down to a signed checkpoint); 0 keeps them all.
            retention_days = 0

            [statistics]
            # GET /v1/stats and `anonreg stats` (admins and statisticians only). Cells from 1 to k-1
            # are shown as "<k", and further cells are hidden so that none can be worked out from
            # the totals. Zero is shown.
            k = 5
            # Differential privacy: two-sided geometric noise on every count, each release stored
            # (asking again returns the same numbers) and charged to the months it covers.
            privacy = false
            # Epsilon charged to every month a noisy release covers (smaller: noisier).
            epsilon = 0.5
            # Total epsilon releases may spend on one month; further releases are refused.
            monthly_budget = 2.0

            [retention]
            # Days a subject whose monitoring completed is kept before it is erased.
            completed_grace_days = 30
            # A subject with no check-up for this many days is erased.
            inactive_days = 730

            \(category("dependence", .dependence, "Drug dependence: check-up every 90 days, three years of remission, erased after five years at most."))
            \(category("harmful-use", .harmfulUse, "Harmful use: check-up every 90 days, one year of remission, erased after two years at most."))
            [vocabulary]
            # Substances a check-up may record as detected.
            substances = \(list(MonitoringRules.defaultSubstances))
            # Treatments a check-up may record.
            treatments = \(list(MonitoringRules.defaultTreatments))

            """
    }
}
