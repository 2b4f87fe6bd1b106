import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Reading a keyring passphrase into secure memory, and turning it into the file-sealing key.
public enum Passphrase {
    /// The most bytes a passphrase file may hold.
    public static let maxBytes = 1024

    /// Reads a passphrase file (e.g. a systemd credential) into secure memory. One trailing
    /// newline is dropped, so `echo secret > file` works; the file must be 0600 or stricter.
    public static func read(path: String, rule: SecureFile.Rule = .ownedPrivate) throws(KeyringError) -> KeyMaterial {
        let (fd, size) = try SecureFile.openForReading(path, rule: rule)
        defer { close(fd) }
        guard size > 0, size <= maxBytes else {
            throw .malformedKeyFile(path: path, reason: "a passphrase file holds 1 to \(maxBytes) bytes")
        }
        // Read into a secure scratch buffer, then copy the passphrase without its newline.
        let raw: SecretBytes
        do {
            raw = try SecretBytes(count: size) { (buffer) throws(CryptoError) in
                let ok = (try? SecureFile.readExactly(fd: fd, into: buffer, path: path)) != nil
                if !ok { throw CryptoError.invalidLength(what: "passphrase file", expected: size, actual: 0) }
            }
        } catch { throw .io(path: path, operation: "read", errno: EIO) }
        let length = raw.withUnsafeBytes { $0[size - 1] == UInt8(ascii: "\n") ? size - 1 : size }
        guard length > 0 else { throw .malformedKeyFile(path: path, reason: "the passphrase is empty") }
        do {
            let trimmed = try raw.withUnsafeBytes { (all) throws(CryptoError) in
                try SecretBytes(copying: UnsafeRawBufferPointer(rebasing: all[0..<length]))
            }
            return KeyMaterial(trimmed, name: "keyring passphrase")
        } catch { throw .crypto(error) }
    }

    /// The floor for a new passphrase (docs/CRYPTO.md §Passphrases): at least this many
    /// characters ...
    public static let minimumCharacters = 12
    /// ... or at least this many words.
    public static let minimumWords = 4

    /// Refuses a new passphrase below the floor: fewer than 12 characters (Unicode code points)
    /// and fewer than 4 words (runs of non-blank characters). Only new secrets are checked: a
    /// keyring or backup sealed earlier still opens with the passphrase it was sealed with.
    /// Counted on the bytes in secure memory; the passphrase never becomes a String.
    public static func checkStrength(_ passphrase: KeyMaterial) throws(KeyringError) {
        let (characters, words) = passphrase.bytes.withUnsafeBytes { bytes -> (Int, Int) in
            var characters = 0
            var words = 0
            var inWord = false
            for byte in bytes {
                // A UTF-8 continuation byte (10xxxxxx) belongs to the character before it.
                if byte & 0xC0 != 0x80 { characters += 1 }
                let blank = byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
                if !blank && !inWord { words += 1 }
                inWord = !blank
            }
            return (characters, words)
        }
        guard characters >= minimumCharacters || words >= minimumWords else {
            throw .weakPassphrase(characters: characters, words: words)
        }
    }

    /// Argon2id(passphrase) → 32-byte master → crypto_kdf subkey 1 under "ANRGkfil"
    /// (docs/CRYPTO.md §Keyring sealing).
    static func sealingKey(passphrase: KeyMaterial, parameters: PasswordKDFParameters) throws(KeyringError) -> KeyMaterial {
        do {
            let master = try PasswordKey.derive(passphrase: passphrase.bytes, parameters: parameters, length: KDF.masterKeyBytes)
            let key = try KDF.deriveSubkey(from: master, id: 1, context: .keyFileSealing, length: XChaCha20Poly1305.keyBytes)
            return KeyMaterial(key, name: "key-file sealing key")
        } catch { throw .crypto(error) }
    }

    static let checkName = "passphrase-check"

    /// The manifest's check value: an empty plaintext sealed under the sealing key.
    static func makeCheck(sealingKey: KeyMaterial) throws(KeyringError) -> String {
        do {
            return Hex.encode(
                try XChaCha20Poly1305.seal(
                    [], associatedData: KeyFile.associatedData(name: checkName, protection: .sealed), key: sealingKey.bytes))
        } catch { throw .crypto(error) }
    }

    static func verifyCheck(_ check: String, sealingKey: KeyMaterial) throws(KeyringError) {
        guard let sealed = try? Hex.decode(check),
            (try? XChaCha20Poly1305.open(
                sealed, associatedData: KeyFile.associatedData(name: checkName, protection: .sealed),
                key: sealingKey.bytes)) != nil
        else { throw .wrongPassphrase }
    }
}
