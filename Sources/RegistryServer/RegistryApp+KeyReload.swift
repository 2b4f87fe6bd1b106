import RegistryKeyring

extension RegistryApp {
    /// On SIGHUP, after the configuration: reads the keys directory again for KEK versions
    /// staged or rotated on another node and copied here (`Keyring.reloadingKEKs`,
    /// docs/OPERATIONS.md §PostgreSQL and several nodes, "KEK rotation"). A change it does not
    /// take up is logged and the running keyring stays. Under `keyChanges`, like the key routes.
    func reloadKeys() {
        keyChanges.withLock { _ in
            let current = keys.current
            guard current.source.isWritable else {
                logger.notice("keyring not reloaded: it is loaded from systemd credentials, which change only at a restart")
                return
            }
            let next: Keyring
            do { next = try current.reloadingKEKs() } catch {
                logger.error("\(error)", metadata: ["path": "\(current.source.directory)"])
                return
            }
            guard next !== current else { return }
            keys.replace(next)
            logger.notice(
                "keyring reloaded",
                metadata: [
                    "primary": "\(next.primaryKEK.version)",
                    "versions": "\(next.kekEntries.map { "\($0.version) \($0.status.rawValue)" }.joined(separator: ", "))",
                ])
        }
    }
}
