import RegistryCrypto

/// The one error type of the RegistryKeyring module. Messages name paths and say how to fix the
/// problem; they never contain key bytes or the passphrase.
public enum KeyringError: Error, Equatable, Sendable, CustomStringConvertible {
    case notFound(path: String)
    case alreadyExists(path: String)
    case insecurePermissions(path: String, mode: UInt32, isDirectory: Bool)
    case wrongOwner(path: String, owner: UInt32, expected: UInt32)
    case notARegularFile(path: String)
    case malformedManifest(path: String, reason: String)
    case malformedKeyFile(path: String, reason: String)
    case passphraseRequired
    case passphraseNotUsed
    case wrongPassphrase
    /// A sealed key file failed authentication although the passphrase is right: it was modified,
    /// truncated, or copied in from another name.
    case keyFileTampered(path: String)
    case io(path: String, operation: String, errno: Int32)
    /// A key file holds a different key from the one keyring.json records.
    case keyMismatch(name: String)
    case unknownKEKVersion(Int)
    case invalidTransition(version: Int, from: KEKStatus, to: KEKStatus, reason: String)
    case readOnly(reason: String)
    /// Another process changed the keyring after this snapshot was loaded.
    case staleSnapshot
    case crypto(CryptoError)
    /// The erasure ledger cannot be trusted (docs/CRYPTO.md §Erasure ledger).
    case malformedLedger(path: String, reason: String)
    /// A keyring backup file that is not one, or is damaged outside its sealed part.
    case malformedBackup(reason: String)
    /// The passphrase does not open a keyring backup (or the backup was altered).
    case wrongBackupPassphrase
    /// A passphrase could not be read from the terminal, or its confirmation differed.
    case passphraseEntry(String)
    /// The keys directory holds entries that are not anonreg's regular files (KeyringDirectory).
    case unexpectedFiles(directory: String, entries: [String])
    /// A new passphrase below the floor (docs/CRYPTO.md §Passphrases).
    case weakPassphrase(characters: Int, words: Int)
    /// The keys directory changed in a way a running daemon does not take up (Keyring+Reload).
    case reloadRefused(reason: String)
    /// A KEK file the manifest does not name, where a new version would be written.
    case unnamedKeyFile(name: String)

    public var description: String {
        switch self {
        case .notFound(let path):
            "\(path) does not exist. Create a keyring with `anonreg init --state-dir DIR`, or restore the keys directory from its backup."
        case .alreadyExists(let path):
            "\(path) already exists; refusing to overwrite a keyring."
        case .insecurePermissions(let path, let mode, let isDirectory):
            "\(path) has mode \(String(mode & 0o7777, radix: 8)), which lets group or others at key material. "
                + "Fix: chmod \(isDirectory ? "700" : "600") \(path)"
        case .wrongOwner(let path, let owner, let expected) where expected == 0:
            // Never suggest giving the service's files to root: anonregd would lose its keys.
            "\(path) is owned by uid \(owner), and this command runs as root. Do not chown it to root: anonregd, which "
                + "runs as uid \(owner), would lose it. Run the command as uid \(owner) (for example runuser -u USER -- anonreg ...); "
                + "root's offline commands given --state-dir switch to the state directory's owner by themselves"
        case .wrongOwner(let path, let owner, let expected):
            "\(path) is owned by uid \(owner), not by uid \(expected) that runs anonreg. Fix: chown \(expected) \(path)"
        case .notARegularFile(let path):
            "\(path) is not a regular file (symbolic links are refused)."
        case .malformedManifest(let path, let reason):
            "\(path) is not a valid anonreg keyring manifest: \(reason)."
        case .malformedKeyFile(let path, let reason):
            "\(path) is not a valid anonreg key file: \(reason)."
        case .passphraseRequired:
            "this keyring is sealed with a passphrase; give it with --passphrase-file FILE (anonregd itself reads it only from the systemd credential anonreg-keyring-passphrase)."
        case .passphraseNotUsed:
            "a passphrase was supplied, but this keyring is not sealed."
        case .wrongPassphrase:
            "the passphrase does not unlock this keyring."
        case .keyFileTampered(let path):
            "\(path) failed authentication although the passphrase is right: it was modified, truncated or renamed. Restore it from a keyring backup."
        case .io(let path, let operation, let code):
            "\(operation) \(path) failed: \(String(cString: strerror(code)))."
        case .keyMismatch(let name):
            "\(name) does not hold the key keyring.json records for it (a key file was swapped or restored from another keyring). Restore the matching file from a keyring backup."
        case .unknownKEKVersion(let version):
            "the keyring has no KEK version \(version)."
        case .invalidTransition(let version, let from, let to, let reason):
            "KEK version \(version) cannot go from \(from.rawValue) to \(to.rawValue): \(reason)."
        case .readOnly(let reason):
            "the keyring cannot be changed: \(reason)."
        case .staleSnapshot:
            "the keyring changed on disk since it was loaded; load it again and retry."
        case .crypto(let error):
            "cryptographic failure: \(error)."
        case .malformedBackup(let reason):
            "not a usable keyring backup: \(reason)."
        case .wrongBackupPassphrase:
            "wrong passphrase (or the backup file was altered); nothing was written."
        case .passphraseEntry(let reason):
            "\(reason)."
        case .unexpectedFiles(let directory, let entries):
            "\(directory) holds what anonreg did not put there: \(entries.joined(separator: ", ")). Every entry of the keys directory must be one of anonreg's key files, regular and 0600 (docs/CRYPTO.md §Keyring); move the others out of it."
        case .weakPassphrase(let characters, let words):
            "the passphrase is too weak (\(characters) characters, \(words) word(s)): use at least \(Passphrase.minimumCharacters) characters, or \(Passphrase.minimumWords) words separated by spaces (docs/CRYPTO.md §Passphrases); nothing was written."
        case .unnamedKeyFile(let name):
            "\(name) exists but keyring.json does not name it, so no new version was written: if it is another node's key, copy that node's keyring.json too and reload (systemctl reload anonregd); if a rotation crashed before writing keyring.json, remove it; then retry."
        case .reloadRefused(let reason):
            "the keys directory was not reloaded, the running keyring stays: \(reason)."
        case .malformedLedger(let path, let reason):
            "\(path) is not a valid erasure ledger: \(reason). Restore it from the keyring backup; do not restore a database backup until it verifies."
        }
    }
}

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif
