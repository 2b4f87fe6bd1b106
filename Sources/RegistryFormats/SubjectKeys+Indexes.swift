import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

/// The keyed indexes and tags a subject is found or counted by (docs/CRYPTO.md §Pseudonyms,
/// §Unique persons, §Audit): BLAKE2b keyed with a keyring key, each under its own label. Without
/// the keyring none of them can be computed or reversed; nothing here derives from a name.
extension SubjectKeys {
    /// The keyed index of a typed code. A malformed code is answered like an unknown one
    /// (`.codeNotFound`), so that the wire never tells a mistyped code from an unregistered one
    /// (docs/PROTOCOL.md §4, where the checksum is checked).
    package static func codeIndex(_ code: String, keyring: Keyring) throws(StorageError) -> [UInt8] {
        let parsed: PatientCode
        do { parsed = try PatientCode.parse(code) } catch { throw .codeNotFound }
        return try codeIndex(parsed, keyring: keyring)
    }

    package static func codeIndex(_ code: borrowing PatientCode, keyring: Keyring) throws(StorageError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.codeIndex, secret: code.bytes, key: keyring.codeIndexKey.bytes) } catch {
            throw .database(reason: "could not index a code")
        }
    }

    package static func handleIndex(_ handle: CaseHandle, keyring: Keyring) throws(StorageError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.caseHandle, handle.rawBytes, key: keyring.codeIndexKey.bytes) } catch {
            throw .database(reason: "could not index a case handle")
        }
    }

    package static func linkageHash(_ linkage: [UInt8], keyring: Keyring) throws(StorageError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.linkageHash, linkage, key: keyring.linkageKey.bytes) } catch {
            throw .database(reason: "could not hash a linkage value")
        }
    }

    /// An open month's unique-person tag: BLAKE2b-keyed(K_month, "anonreg/v1/unique-person-tag"
    /// ‖ 0x00 ‖ linkage hash), K_month = crypto_kdf(linkage key, id = year·12 + month − 1,
    /// "ANRGumon"). Tags of two months cannot be matched without the key (docs/CRYPTO.md
    /// §Unique persons).
    package static func uniquePersonTag(linkageHash: [UInt8], month: Month, keyring: Keyring) throws(StorageError) -> [UInt8] {
        do {
            let monthKey = try KDF.deriveSubkey(
                from: keyring.linkageKey.bytes, id: UInt64(month.year * 12 + month.month - 1),
                context: .uniquePersonMonth, length: KeyedHash.keyBytes)
            return try KeyedHash.hash(label: Label.uniquePersonTag, linkageHash, key: monthKey)
        } catch { throw .database(reason: "could not derive a unique-person tag") }
    }

    package static func auditReference(sid: [UInt8], keyring: Keyring) throws(StorageError) -> [UInt8] {
        do { return try KeyedHash.hash(label: Label.auditSubject, sid, key: keyring.auditSubjectKey.bytes) } catch {
            throw .database(reason: "could not derive an audit reference")
        }
    }
}
