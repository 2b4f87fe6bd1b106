import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

/// Envelope encryption for one subject: its DEK wrapped under a KEK, and its records sealed under
/// the DEK (docs/CRYPTO.md §Envelope, §Records). The keyed indexes are in `SubjectKeys+Indexes.swift`,
/// the sealed case handle in `CaseLinkRow+Handle.swift`.
package enum SubjectKeys {
    /// The stable random subject id bound into every associated data. It survives code re-issue,
    /// so records and audit references keep working when the code changes.
    package static let sidBytes = 16

    package static func newSID() throws(StorageError) -> [UInt8] {
        do { return try Sodium.randomBytes(count: sidBytes) } catch { throw .database(reason: "random bytes unavailable") }
    }

    package static func newDEK(slab: SecureSlab) throws(StorageError) -> SecretBytes {
        do { return try SecretBytes.random(count: XChaCha20Poly1305.keyBytes, from: slab) } catch {
            throw .database(reason: "secure memory unavailable")
        }
    }

    /// ad = "anonreg/v1/dek-wrap" ‖ 0x00 ‖ sid ‖ BE32(version)
    package static func wrapAD(sid: [UInt8], version: Int) -> [UInt8] {
        Label.bytes(Label.dekWrap) + [0] + sid + bigEndian(UInt32(version))
    }

    package static func wrap(_ dek: borrowing SecretBytes, sid: [UInt8], version: Int, kek: KeyMaterial) throws(StorageError) -> [UInt8] {
        do { return try XChaCha20Poly1305.seal(secret: dek, associatedData: wrapAD(sid: sid, version: version), key: kek.bytes) } catch {
            throw .database(reason: "could not wrap a data key")
        }
    }

    /// Opens a wrapped DEK into a slot of `slab` (docs/CRYPTO.md §Secret memory).
    package static func unwrap(_ wrapped: [UInt8], sid: [UInt8], version: Int, keyring: Keyring, slab: SecureSlab) throws(StorageError)
        -> SecretBytes
    {
        let kek: KeyMaterial
        do { kek = try keyring.kek(version: version) } catch { throw .keyUnavailable(version: version) }
        do {
            return try XChaCha20Poly1305.openSecret(wrapped, associatedData: wrapAD(sid: sid, version: version), key: kek.bytes, slab: slab)
        } catch {
            throw .tampered(what: "data key")
        }
    }

    /// ad = "anonreg/v1/record" ‖ 0x00 ‖ sid ‖ BE64(id) ‖ kind ‖ 0x00 ‖ BE16(schema version)
    package static func recordAD(sid: [UInt8], id: Int64, kind: String, schemaVersion: UInt16) -> [UInt8] {
        Label.bytes(Label.record) + [0] + sid + bigEndian(UInt64(bitPattern: id)) + Array(kind.utf8) + [0]
            + bigEndian(schemaVersion)
    }

    /// docs/CRYPTO.md §Monitoring summary:
    ///
    ///     ad = "anonreg/v1/summary" ‖ 0x00 ‖ sid ‖ BE64(records) ‖ records head (32 bytes)
    ///          ‖ BE64(newest record id)
    ///
    /// `records` and the head are the subject row's record count and chain head (RowIntegrity),
    /// which the row MAC authenticates; the newest record id is read from the record rows. So a
    /// summary opens only beside the history it was computed from: one put back from before a
    /// later check-up, or moved from another subject, fails like a tampered record, and so does
    /// one beside record rows that were deleted or added behind anonreg's back.
    package static func summaryAD(sid: [UInt8], records: Int, recordsHead: [UInt8], newestRecord: Int64) -> [UInt8] {
        Label.bytes(Label.summary) + [0] + sid + bigEndian(UInt64(clamping: records)) + recordsHead
            + bigEndian(UInt64(bitPattern: newestRecord))
    }

    package static func seal(_ plaintext: [UInt8], dek: borrowing SecretBytes, ad: [UInt8]) throws(StorageError) -> [UInt8] {
        do { return try XChaCha20Poly1305.seal(plaintext, associatedData: ad, key: dek) } catch {
            throw .database(reason: "could not seal a record")
        }
    }

    package static func open(_ sealed: [UInt8], dek: borrowing SecretBytes, ad: [UInt8], what: String) throws(StorageError) -> [UInt8] {
        do { return try XChaCha20Poly1305.open(sealed, associatedData: ad, key: dek) } catch {
            throw .tampered(what: what)
        }
    }

    /// A hiding commitment to an audit subject reference (docs/CRYPTO.md §Audit, subject
    /// commitments). Deleting the salt unlinks the entry from the subject for good.
    package static func auditCommitment(reference: [UInt8]) throws(StorageError) -> KeyedHash.Commitment {
        do { return try KeyedHash.commit(label: Label.auditSubjectCommit, reference) } catch {
            throw .database(reason: "could not commit to an audit subject reference")
        }
    }

    package static func newCaseHandle() throws(StorageError) -> CaseHandle {
        do {
            let random = try Sodium.randomBytes(count: CaseHandle.randomBytes)
            return CaseHandle(CaseHandle.prefix + Hex.encode(random))!
        } catch { throw .database(reason: "random bytes unavailable") }
    }

    package static func bigEndian<T: FixedWidthInteger>(_ value: T) -> [UInt8] {
        withUnsafeBytes(of: value.bigEndian) { Array($0) }
    }
}
