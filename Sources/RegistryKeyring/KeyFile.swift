import RegistryCrypto

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// One secret per file (docs/CRYPTO.md §Key files):
///
///     plain:  "ANRGKEY1" ‖ 0x00 ‖ key bytes
///     sealed: "ANRGKEY1" ‖ 0x01 ‖ nonce(24) ‖ XChaCha20-Poly1305(key bytes) ‖ tag(16)
///
/// A sealed file's associated data is `"anonreg/v1/key-file" ‖ 0x00 ‖ file name ‖ 0x00 ‖ magic ‖
/// 0x01`, so renaming `kek-1.key` to `kek-2.key` makes it fail to open.
enum KeyFile {
    static let magic: [UInt8] = Array("ANRGKEY1".utf8)
    static let headerBytes = magic.count + 1

    enum Protection: UInt8 {
        case plain = 0x00
        case sealed = 0x01
    }

    static func associatedData(name: String, protection: Protection) -> [UInt8] {
        Label.bytes(Label.keyFile) + [0] + Array(name.utf8) + [0] + magic + [protection.rawValue]
    }

    /// Writes `secret` to `directory/name`, sealed when `sealingKey` is given.
    static func write(
        _ secret: borrowing SecretBytes, directory: String, name: String,
        sealingKey: KeyMaterial?, overwrite: Bool
    ) throws(KeyringError) {
        if let sealingKey {
            let protection = Protection.sealed
            let body: [UInt8]
            do {
                body = try XChaCha20Poly1305.seal(
                    secret: secret, associatedData: associatedData(name: name, protection: protection),
                    key: sealingKey.bytes)
            } catch { throw .crypto(error) }
            let bytes = magic + [protection.rawValue] + body
            try SecureFile.writeAtomically(directory: directory, name: name, overwrite: overwrite) { (fd, path) throws(KeyringError) in
                try bytes.withUnsafeBytes { buffer in
                    Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
                }.get()
            }
        } else {
            let header = magic + [Protection.plain.rawValue]
            try SecureFile.writeAtomically(directory: directory, name: name, overwrite: overwrite) { (fd, path) throws(KeyringError) in
                try header.withUnsafeBytes { buffer in
                    Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
                }.get()
                // The key goes from secure memory to the file with no intermediate copy.
                try secret.withUnsafeBytes { (buffer) throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }
        }
    }

    /// Reads the key stored at `path` under the logical file name `name`.
    static func read(
        path: String, name: String, length: Int, sealingKey: KeyMaterial?, rule: SecureFile.Rule = .ownedPrivate
    ) throws(KeyringError) -> SecretBytes {
        let (fd, size) = try SecureFile.openForReading(path, rule: rule)
        defer { close(fd) }
        var header = [UInt8](repeating: 0, count: headerBytes)
        guard size >= headerBytes else { throw .malformedKeyFile(path: path, reason: "too short") }
        try header.withUnsafeMutableBytes { buffer in
            Result { () throws(KeyringError) in try SecureFile.readExactly(fd: fd, into: buffer, path: path) }
        }.get()
        guard Array(header.prefix(magic.count)) == magic else {
            throw .malformedKeyFile(path: path, reason: "missing the ANRGKEY1 header")
        }
        switch Protection(rawValue: header[magic.count]) {
        case .plain:
            guard sealingKey == nil else {
                throw .malformedKeyFile(path: path, reason: "the keyring is sealed but this key file is not")
            }
            guard size == headerBytes + length else {
                throw .malformedKeyFile(path: path, reason: "expected \(length) key bytes, found \(size - headerBytes)")
            }
            return try readSecret(fd: fd, length: length, path: path)
        case .sealed:
            guard let sealingKey else { throw .passphraseRequired }
            let expected = headerBytes + XChaCha20Poly1305.overheadBytes + length
            guard size == expected else {
                throw .malformedKeyFile(path: path, reason: "expected \(expected) bytes, found \(size)")
            }
            var body = [UInt8](repeating: 0, count: size - headerBytes)
            try body.withUnsafeMutableBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.readExactly(fd: fd, into: buffer, path: path) }
            }.get()
            do {
                return try XChaCha20Poly1305.openSecret(
                    body, associatedData: associatedData(name: name, protection: .sealed), key: sealingKey.bytes)
            } catch .authenticationFailed {
                throw .keyFileTampered(path: path)
            } catch {
                throw .crypto(error)
            }
        case nil:
            throw .malformedKeyFile(path: path, reason: "unknown protection byte")
        }
    }

    private static func readSecret(fd: Int32, length: Int, path: String) throws(KeyringError) -> SecretBytes {
        var failure: KeyringError? = nil
        let secret: SecretBytes
        do throws(CryptoError) {
            secret = try SecretBytes(count: length) { (buffer) throws(CryptoError) in
                do throws(KeyringError) { try SecureFile.readExactly(fd: fd, into: buffer, path: path) } catch {
                    failure = error
                    throw CryptoError.invalidLength(what: "key file", expected: length, actual: 0)
                }
            }
        } catch {
            throw failure ?? .crypto(error)
        }
        return secret
    }
}
