import Foundation

/// Where a keyring is read from: the keys directory, optionally overlaid by systemd credentials.
///
/// With `$CREDENTIALS_DIRECTORY` set (systemd `LoadCredential=` / `LoadCredentialEncrypted=`),
/// a file `anonreg-keys_NAME` there is used instead of `NAME` in the keys directory. That is the
/// name `LoadCredential=anonreg-keys:/var/lib/anonreg/keys` gives every file of a directory, and
/// the ID to give each file with `LoadCredentialEncrypted=`. A credential
/// `anonreg-keyring-passphrase` unlocks a passphrase-sealed keyring (docs/OPERATIONS.md).
public struct KeyringSource: Sendable, Equatable {
    public static let credentialPrefix = "anonreg-keys_"
    public static let passphraseCredential = "anonreg-keyring-passphrase"

    public var directory: String
    public var credentialsDirectory: String?

    public init(directory: String, credentialsDirectory: String? = nil) {
        self.directory = directory
        self.credentialsDirectory = credentialsDirectory
    }

    /// The keys directory, with `$CREDENTIALS_DIRECTORY` taken from the environment.
    public static func fromEnvironment(
        directory: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> KeyringSource {
        let credentials = environment["CREDENTIALS_DIRECTORY"].flatMap { $0.isEmpty ? nil : $0 }
        return KeyringSource(directory: directory, credentialsDirectory: credentials)
    }

    /// The path a keyring file is read from.
    func path(for name: String) -> String {
        if let credential = credentialPath(for: name) { return credential }
        return directory + "/" + name
    }

    /// The permission rule for that path.
    func rule(for name: String) -> SecureFile.Rule {
        credentialPath(for: name) == nil ? .ownedPrivate : .systemdCredential
    }

    /// Whether any of `names` is read from the keys directory (which then must pass its checks).
    func usesDirectory(for names: [String]) -> Bool { names.contains { credentialPath(for: $0) == nil } }

    func credentialPath(for name: String) -> String? {
        guard let credentialsDirectory else { return nil }
        let candidate = credentialsDirectory + "/" + Self.credentialPrefix + name
        return SecureFile.exists(candidate) ? candidate : nil
    }

    var passphraseCredentialPath: String? {
        guard let credentialsDirectory else { return nil }
        let candidate = credentialsDirectory + "/" + Self.passphraseCredential
        return SecureFile.exists(candidate) ? candidate : nil
    }

    /// The keyring can be changed only when its manifest comes from the keys directory.
    public var isWritable: Bool { credentialPath(for: KeyFileName.manifest) == nil }
}
