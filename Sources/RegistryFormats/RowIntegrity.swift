import Foundation
import RegistryCore
import RegistryCrypto
import RegistryKeyring
import RegistryProtocol

/// The MACs that authenticate what the database keeps in clear (docs/CRYPTO.md §Authenticated
/// columns). Every clear value that selects a row or drives a decision is bound, under the row
/// MAC key (subkey 1 of the index key under "ANRGrmac"), to the identity of its row, so that a
/// database writer without keys cannot redirect a lookup, hide a record or steer the sweeper
/// without the daemon noticing:
///
///     subject_mac = BLAKE2b-256(row key, "anonreg/v1/subject-row" ‖ 0x00 ‖ BE64(row id) ‖ sid(16) ‖ code_index(32)
///                   ‖ BE32(kek_version) ‖ lp(status) ‖ lp(next_due) ‖ lp(review_on) ‖ BE64(records)
///                   ‖ records_head(32))
///     link_mac    = BLAKE2b-256(row key, "anonreg/v1/case-link-row" ‖ 0x00 ‖ BE64(link id)
///                   ‖ handle_index(32) ‖ lp(clinic) ‖ sid(16))
///     head_0      = 32 zero bytes
///     head_i      = BLAKE2b-256(row key, "anonreg/v1/record-chain" ‖ 0x00 ‖ head_{i-1} ‖ BE64(record id)
///                   ‖ lp(kind) ‖ BE16(schema version))
///
/// `lp(x) = BE32(len x) ‖ x`; an absent date is the empty string. The record chain runs over a
/// subject's records in id order, so a deleted, inserted or replayed record row changes it.
package enum RowIntegrity {
    package static var genesis: [UInt8] { [UInt8](repeating: 0, count: KeyedHash.digestBytes) }

    package static func subjectMAC(
        id: Int64, sid: [UInt8], codeIndex: [UInt8], kekVersion: Int, columns: SubjectColumns, records: Int, recordsHead: [UInt8],
        keyring: Keyring
    ) throws(StorageError) -> [UInt8] {
        // Appended into one buffer: every read of a subject computes this.
        var message: [UInt8] = []
        message.reserveCapacity(8 + sid.count + codeIndex.count + 4 + 3 * 4 + 10 + 10 + 16 + 8 + recordsHead.count)
        append(&message, UInt64(bitPattern: id))
        message += sid
        message += codeIndex
        append(&message, UInt32(truncatingIfNeeded: kekVersion))
        appendLP(&message, columns.status.rawValue)
        appendLP(&message, columns.nextDue?.description ?? "")
        appendLP(&message, columns.reviewOn?.description ?? "")
        append(&message, UInt64(records))
        message += recordsHead
        return try mac(Label.subjectRow, message, keyring: keyring)
    }

    package static func linkMAC(linkID: Int64, handleIndex: [UInt8], clinic: String, sid: [UInt8], keyring: Keyring) throws(StorageError)
        -> [UInt8]
    {
        var message: [UInt8] = []
        message.reserveCapacity(8 + handleIndex.count + 4 + clinic.utf8.count + sid.count)
        append(&message, UInt64(bitPattern: linkID))
        message += handleIndex
        appendLP(&message, clinic)
        message += sid
        return try mac(Label.caseLinkRow, message, keyring: keyring)
    }

    package static func chain(_ previous: [UInt8], recordID: Int64, kind: String, schemaVersion: UInt16, keyring: Keyring)
        throws(StorageError)
        -> [UInt8]
    {
        try mac(
            Label.recordChain,
            previous + SubjectKeys.bigEndian(UInt64(bitPattern: recordID)) + lp(kind) + SubjectKeys.bigEndian(schemaVersion),
            keyring: keyring)
    }

    /// BLAKE2b-256(row key, "anonreg/v1/keyring-binding" ‖ 0x00): what the database records of
    /// the keyring it goes with.
    package static func keyringBinding(_ keyring: Keyring) throws(StorageError) -> [UInt8] {
        try mac(Label.keyringBinding, [], keyring: keyring)
    }

    private static func mac(_ label: String, _ message: [UInt8], keyring: Keyring) throws(StorageError) -> [UInt8] {
        do { return try KeyedHash.hash(label: label, message, key: keyring.rowMACKey.bytes) } catch {
            throw .database(reason: "could not compute a row MAC")
        }
    }

    package static func lp(_ text: String) -> [UInt8] {
        var bytes: [UInt8] = []
        appendLP(&bytes, text)
        return bytes
    }

    static func appendLP(_ message: inout [UInt8], _ text: String) {
        append(&message, UInt32(text.utf8.count))
        message += text.utf8
    }

    static func append<T: FixedWidthInteger>(_ message: inout [UInt8], _ value: T) {
        withUnsafeBytes(of: value.bigEndian) { message += $0 }
    }

    /// Constant-time comparison of a stored MAC with the expected one.
    package static func matches(_ stored: [UInt8], _ expected: [UInt8]) -> Bool {
        stored.count == expected.count && Sodium.constantTimeEquals(stored, expected)
    }
}
