import RegistryCrypto

/// Reading the keys directory again in a running daemon (SIGHUP; docs/CRYPTO.md §KEK lifecycle,
/// "Reloading"): how a KEK version staged or rotated on another node of the registry, whose
/// `kek-N.key` and `keyring.json` were copied here, is taken up without a restart.
///
/// Only the KEK versions may have changed: new versions (their key files read and checked
/// against the new manifest, as at load) and new statuses. Anything else is refused and the
/// running keyring stays:
/// - the OPRF key, the index key, the audit key, the sealing or the keyring's creation (another
///   keyring, or a key file restored from one): a restart is the place to change keyrings;
/// - a version this keyring holds replaced by another key of the same number, or gone from the
///   manifest, or a destroyed version back: data keys wrapped under the old key would stop
///   opening, so the operator must see it at a restart, not have it happen on a signal;
/// - a version this keyring holds marked destroyed (another node destroyed its copy): this
///   node's key file would stay on its disk unnoticed; its own `keys destroy` overwrites it.
extension Keyring {
    /// The keys directory's manifest and new KEK files, in a new snapshot sharing this one's
    /// other keys; `self` when the manifest is unchanged.
    public func reloadingKEKs() throws(KeyringError) -> Keyring {
        let manifestPath = source.path(for: KeyFileName.manifest)
        if source.credentialPath(for: KeyFileName.manifest) == nil {
            try SecureFile.checkDirectory(source.directory)
        }
        let next = try Keyring.readManifest(path: manifestPath, rule: source.rule(for: KeyFileName.manifest))
        if next == manifest { return self }
        func refuse(_ reason: String) -> KeyringError { .reloadRefused(reason: reason) }
        guard next.sealing == manifest.sealing else {
            throw refuse("keyring.json is sealed under another passphrase; restart anonregd with that passphrase to load it")
        }
        guard next.format == manifest.format, next.createdAt == manifest.createdAt, next.oprf == manifest.oprf, next.audit == manifest.audit
        else { throw refuse("keyring.json names another OPRF key, audit key or keyring; restart anonregd to load another keyring") }
        for name in [KeyFileName.oprfSeed, KeyFileName.index, KeyFileName.auditSigning]
        where next.keyChecks[name] != manifest.keyChecks[name] {
            throw refuse("\(name) is another key in keyring.json; restart anonregd to load another keyring")
        }
        for entry in manifest.keks {
            guard let now = next.keks.first(where: { $0.version == entry.version }) else {
                throw refuse("KEK version \(entry.version) is gone from keyring.json")
            }
            if entry.status == .destroyed, now.status != .destroyed {
                throw refuse("KEK version \(entry.version) was destroyed here and keyring.json names it \(now.status.rawValue)")
            }
            if keks[entry.version] != nil, now.status == .destroyed {
                // Destroyed elsewhere: this node's copy of the key file is still on its disk, and
                // only its own destroy overwrites it (after counting its subjects now).
                throw refuse(
                    "keyring.json names KEK version \(entry.version) destroyed, but this node's kek-\(entry.version).key is not: restart anonregd, then run `anonreg keys destroy \(entry.version)` on this node"
                )
            }
            if keks[entry.version] != nil, next.kekCheck(version: entry.version) != manifest.kekCheck(version: entry.version) {
                throw refuse("kek-\(entry.version).key is another key than the one loaded; restart anonregd to load it")
            }
        }
        let secretNames = next.keks.filter { $0.status != .destroyed && keks[$0.version] == nil }.map(\.fileName)
        if source.usesDirectory(for: [KeyFileName.manifest] + secretNames) {
            try SecureFile.checkDirectory(source.directory)
            try KeyringDirectory.check(source.directory)
        }
        return Keyring(source: source, manifest: next, keks: try loadingKEKs(of: next, manifestPath: manifestPath), previous: self)
    }

    /// The KEKs `next` names: those this snapshot holds, and the others read from their files and
    /// checked against `next`'s key checks. Destroyed versions are dropped.
    func loadingKEKs(of next: KeyringManifest, manifestPath: String) throws(KeyringError) -> [Int: KeyMaterial] {
        var loaded = keks
        for entry in next.keks {
            if entry.status == .destroyed {
                loaded[entry.version] = nil
            } else if loaded[entry.version] == nil {
                let key = try KeyFile.read(
                    path: source.path(for: entry.fileName), name: entry.fileName, length: XChaCha20Poly1305.keyBytes,
                    sealingKey: sealingKey, rule: source.rule(for: entry.fileName))
                try KeyCheck.verify(key, name: entry.fileName, manifest: next, path: manifestPath)
                loaded[entry.version] = KeyMaterial(key, name: "kek \(entry.version)")
            }
        }
        return loaded
    }
}
