import Foundation
internal import GRDB
import RegistryCore
import RegistryFormats
import RegistryKeyring

extension RowIntegrity {
    /// Refuses a keyring whose row MAC key is not the one the database was written with (another
    /// registry's keyring, a fresh one, a replaced index key): every row would fail its MAC, and
    /// the sweeper would erase them all.
    static func checkKeyringBinding(_ db: Database, keyring: Keyring, path: String) throws {
        guard try db.tableExists("keyring_binding") else { return }
        guard let stored = try Data.fetchOne(db, sql: "SELECT mac FROM keyring_binding WHERE id = 1") else {
            throw StorageError.unusableDatabase(
                path: path, reason: "it no longer records which keyring it goes with (keyring_binding was emptied outside anonreg)")
        }
        guard matches(Array(stored), try keyringBinding(keyring)) else {
            throw StorageError.unusableDatabase(
                path: path,
                reason:
                    "it was written with another keyring (its index key differs): start anonregd with the keys directory that goes with this database"
            )
        }
    }
}
