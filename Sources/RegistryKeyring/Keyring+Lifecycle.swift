import Foundation
import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#endif

/// KEK lifecycle (docs/CRYPTO.md §KEK lifecycle):
///
///     (new) → [staged →] primary → active → retired → destroyed
///
/// - stage: a new version is written but wraps nothing; copied to every node of a registry
///   before it becomes primary anywhere, no node ever lacks the registry's primary.
/// - rotate: the staged version, or else a new one, becomes primary; the old primary becomes
///   active (still unwraps).
/// - retire: only an active version, and only when no subject uses it (the caller counts).
/// - destroy: only a retired version that no subject uses (the caller counts, at the moment of
///   destroy); its file is overwritten and removed.
extension Keyring {
    /// Makes the staged KEK version primary, or else a new one (its key file written before the
    /// manifest names it); the old primary becomes active.
    public func rotatingKEK(now: Date = Date()) throws(KeyringError) -> Keyring {
        try locked { () throws(KeyringError) in try rotateUnlocked(now: now) }
    }

    /// Writes a new KEK version as `staged`: it unwraps, but nothing is wrapped under it until
    /// `rotatingKEK` promotes it. Refused while a version is staged already.
    public func stagingKEK(now: Date = Date()) throws(KeyringError) -> Keyring {
        try locked { () throws(KeyringError) in
            if let staged = manifest.stagedVersion {
                throw .invalidTransition(
                    version: staged, from: .staged, to: .staged, reason: "version \(staged) is staged already; rotate to make it primary")
            }
            var next = manifest
            let version = try writeNewKEK(into: &next)
            next.keks.append(.init(version: version, status: .staged, createdAt: now))
            return try committing(next)
        }
    }

    private func rotateUnlocked(now: Date) throws(KeyringError) -> Keyring {
        var next = manifest
        for i in next.keks.indices where next.keks[i].status == .primary { next.keks[i].status = .active }
        if let staged = next.keks.firstIndex(where: { $0.status == .staged }) {
            // The key every node already holds: promoted, never written again.
            next.keks[staged].status = .primary
            next.keks[staged].promotedAt = now
        } else {
            let version = try writeNewKEK(into: &next)
            next.keks.append(.init(version: version, status: .primary, createdAt: now))
        }
        return try committing(next)
    }

    /// Writes the key file of the next version and its key check into `next`; returns the version.
    private func writeNewKEK(into next: inout KeyringManifest) throws(KeyringError) -> Int {
        let version = (manifest.keks.map(\.version).max() ?? 0) + 1
        // A file for a version the manifest does not name is either another node's key copied
        // here before its keyring.json, or left by a rotation that crashed before its manifest
        // write. Only a person can tell: it is never overwritten.
        let name = KeyFileName.kek(version)
        if access(source.directory + "/" + name, F_OK) == 0 {
            throw .unnamedKeyFile(name: name)
        }
        do {
            let kek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
            try KeyFile.write(kek, directory: source.directory, name: name, sealingKey: sealingKey, overwrite: false)
            next.keyChecks[name] = try KeyCheck.value(for: kek, name: name)
        } catch let error as KeyringError {
            throw error
        } catch let error as CryptoError {
            throw .crypto(error)
        } catch {
            throw .io(path: source.directory, operation: "rotate", errno: EIO)
        }
        return version
    }

    /// Retires `version`. Refused for the primary, for anything not active, and while
    /// `subjectsUsingIt` (the store's count of DEKs wrapped under it) is not zero.
    public func retiringKEK(version: Int, subjectsUsingIt: Int, now: Date = Date()) throws(KeyringError) -> Keyring {
        try locked { () throws(KeyringError) in try retireUnlocked(version: version, subjectsUsingIt: subjectsUsingIt, now: now) }
    }

    private func retireUnlocked(version: Int, subjectsUsingIt: Int, now: Date) throws(KeyringError) -> Keyring {
        guard let index = manifest.keks.firstIndex(where: { $0.version == version }) else {
            throw .unknownKEKVersion(version)
        }
        let status = manifest.keks[index].status
        guard status == .active else {
            let reason =
                switch status {
                case .primary: "rotate to a new primary first"
                case .staged: "a staged version wraps nothing yet; rotate to make it primary"
                default: "only an active version can be retired"
                }
            throw .invalidTransition(version: version, from: status, to: .retired, reason: reason)
        }
        guard subjectsUsingIt == 0 else {
            throw .invalidTransition(
                version: version, from: status, to: .retired,
                reason: "\(subjectsUsingIt) subject(s) still use it; run `anonreg keys rewrap` first")
        }
        var next = manifest
        next.keks[index].status = .retired
        next.keks[index].retiredAt = now
        return try committing(next)
    }

    /// Destroys a retired `version`: the manifest records it first, then the key file is
    /// overwritten and removed. Re-running finishes a destroy that was interrupted.
    ///
    /// `subjectsUsingIt` is the store's count, taken now, of DEKs wrapped under the version. It
    /// must be zero: what was true at retire may not be any more (a restored older backup brings
    /// subjects of a retired version back), and destroying then would shred them.
    public func destroyingKEK(version: Int, subjectsUsingIt: Int, now: Date = Date()) throws(KeyringError) -> Keyring {
        try locked { () throws(KeyringError) in try destroyUnlocked(version: version, subjectsUsingIt: subjectsUsingIt, now: now) }
    }

    private func destroyUnlocked(version: Int, subjectsUsingIt: Int, now: Date) throws(KeyringError) -> Keyring {
        guard let index = manifest.keks.firstIndex(where: { $0.version == version }) else {
            throw .unknownKEKVersion(version)
        }
        let status = manifest.keks[index].status
        guard status == .retired || status == .destroyed else {
            throw .invalidTransition(version: version, from: status, to: .destroyed, reason: "retire it first")
        }
        guard subjectsUsingIt == 0 || status == .destroyed else {
            throw .invalidTransition(
                version: version, from: status, to: .destroyed,
                reason:
                    "\(subjectsUsingIt) subject(s) have their data key wrapped under it now (a restored backup brings them back); run `anonreg keys rewrap` first"
            )
        }
        var next = manifest
        if status == .retired {
            next.keks[index].status = .destroyed
            next.keks[index].destroyedAt = now
            next.keyChecks[KeyFileName.kek(version)] = nil
        }
        let updated = try committing(next)
        try SecureFile.overwriteAndRemove(directory: source.directory, name: KeyFileName.kek(version))
        return updated
    }

    /// Runs a change under an exclusive `flock` on the keys directory, after checking that the
    /// manifest on disk is still the one this snapshot was loaded from.
    func locked<R>(_ body: () throws(KeyringError) -> R) throws(KeyringError) -> R {
        try requireWritable()
        let fd = open(source.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: source.directory, operation: "open", errno: errno) }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else { throw .io(path: source.directory, operation: "lock", errno: errno) }
        }
        defer { flock(fd, LOCK_UN) }
        let onDisk = try Keyring.readManifest(path: source.directory + "/" + KeyFileName.manifest)
        guard onDisk == manifest else { throw .staleSnapshot }
        return try body()
    }

    private func requireWritable() throws(KeyringError) {
        guard source.isWritable else {
            throw .readOnly(
                reason:
                    "it is loaded from systemd credentials; change it through a daemon that reads the keys directory, then re-encrypt the credentials (docs/OPERATIONS.md §Keys from systemd credentials)"
            )
        }
    }

    /// Writes `next` as the manifest (atomically) and loads the result.
    private func committing(_ next: KeyringManifest) throws(KeyringError) -> Keyring {
        try next.validate(path: source.directory + "/" + KeyFileName.manifest)
        try Keyring.writeManifest(next, directory: source.directory, overwrite: true)
        // Snapshot what is on disk (dates are stored to the second), so a later staleness check
        // compares like with like.
        let next = try Keyring.readManifest(path: source.directory + "/" + KeyFileName.manifest)
        return Keyring(
            source: source, manifest: next, keks: try loadingKEKs(of: next, manifestPath: source.directory + "/" + KeyFileName.manifest),
            previous: self)
    }
}
