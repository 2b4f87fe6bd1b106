import RegistryCrypto

/// Check values that bind each key file's content to the manifest (docs/CRYPTO.md §Keyring).
enum KeyCheck {
    static let bytes = 16

    static func value(for key: borrowing SecretBytes, name: String) throws(KeyringError) -> String {
        do {
            return Hex.encode(try KeyedHash.hash(label: Label.keyCheck, Array(name.utf8), key: key, length: bytes))
        } catch { throw .crypto(error) }
    }

    static func verify(_ key: borrowing SecretBytes, name: String, manifest: KeyringManifest, path: String) throws(KeyringError) {
        guard let expected = manifest.keyChecks[name] else {
            throw .malformedManifest(path: path, reason: "no key check for \(name)")
        }
        let actual = try value(for: key, name: name)
        guard Sodium.constantTimeEquals(Array(actual.utf8), Array(expected.utf8)) else {
            throw .keyMismatch(name: name)
        }
    }
}
