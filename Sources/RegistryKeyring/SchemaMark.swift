import Foundation

/// The schema migrations the registry's database has reached, kept beside the keyring
/// (`KEYS_DIR/schema-mark`, mode 0600, replaced atomically), so that a database whose schema went
/// backwards is refused (docs/CRYPTO.md §Authenticated columns, "Migrations"). A database writer
/// without keys could otherwise drop the MAC columns, delete the `v4-row-macs` record from
/// `grdb_migrations`, and have the next start MAC the rows they forged. Holds no secret.
public struct SchemaMark: Codable, Sendable, Equatable {
    public static let fileName = "schema-mark"
    public var format = 1
    public var migrations: [String]

    public init(migrations: [String]) { self.migrations = migrations }

    public static func read(directory: String) throws(KeyringError) -> SchemaMark? {
        let path = directory + "/" + fileName
        guard SecureFile.exists(path) else { return nil }
        let bytes = try SecureFile.readAll(path, limit: 1 << 16)
        guard let mark = try? JSONDecoder().decode(SchemaMark.self, from: Data(bytes)), mark.format == 1 else {
            throw .malformedManifest(path: path, reason: "not a schema mark of format 1")
        }
        return mark
    }

    public func write(directory: String) throws(KeyringError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let json = try? encoder.encode(self) else {
            throw .malformedManifest(path: directory, reason: "cannot encode the schema mark")
        }
        let bytes = Array(json) + [0x0A]
        try SecureFile.writeAtomically(directory: directory, name: Self.fileName, overwrite: true) { (fd, path) throws(KeyringError) in
            try bytes.withUnsafeBytes { buffer in
                Result { () throws(KeyringError) in try SecureFile.writeAll(fd: fd, buffer, path: path) }
            }.get()
        }
    }

    /// The migrations of this mark that `applied` lacks (a database behind the mark).
    public func missing(from applied: [String]) -> [String] {
        let have = Set(applied)
        return migrations.filter { !have.contains($0) }
    }
}
