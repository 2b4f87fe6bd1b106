#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import RegistryCrypto

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
            return Hex.encode(try XChaCha20Poly1305.seal(
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
