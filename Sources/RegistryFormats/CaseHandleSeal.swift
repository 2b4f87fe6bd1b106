import RegistryCore
import RegistryCrypto
import RegistryKeyring

/// The sealed case handle, the one place it is sealed and opened (docs/CRYPTO.md §Records).
///
/// A case link keeps the clinic's handle twice: as a keyed index to find the row by, and sealed
/// under the subject's DEK so that the due list and a repeated enrolment can hand it back. The
/// associated data binds the sid and the link row's id, so a sealed handle moved to another row
/// or subject fails to open; opening also checks that the handle is the one the row's index
/// names, so both copies always agree.
package enum CaseHandleSeal {
    /// The kind bound into the associated data, and the plaintext's schema version.
    package static let kind = "case-handle"
    package static let schemaVersion: UInt16 = 1

    /// ad = SubjectKeys.recordAD(sid, link id, "case-handle", 1)
    package static func associatedData(sid: [UInt8], linkID: Int64) -> [UInt8] {
        SubjectKeys.recordAD(sid: sid, id: linkID, kind: kind, schemaVersion: schemaVersion)
    }

    package static func seal(_ handle: CaseHandle, sid: [UInt8], linkID: Int64, dek: borrowing SecretBytes) throws(StorageError)
        -> [UInt8]
    {
        try SubjectKeys.seal(Array(handle.text.utf8), dek: dek, ad: associatedData(sid: sid, linkID: linkID))
    }

    /// Opens a link row's sealed handle; a handle that does not open, does not parse or is not
    /// the one `handleIndex` names is `.tampered`. The row's `linkID` and `handleIndex` are
    /// trusted here: the backend checks the link row's MAC (RowIntegrity.linkMAC) first.
    package static func open(
        _ sealed: [UInt8], sid: [UInt8], linkID: Int64, handleIndex: [UInt8], dek: borrowing SecretBytes, keyring: Keyring
    ) throws(StorageError) -> CaseHandle {
        let text = try SubjectKeys.open(sealed, dek: dek, ad: associatedData(sid: sid, linkID: linkID), what: "case handle")
        guard let handle = CaseHandle(String(decoding: text, as: UTF8.self)),
            RowIntegrity.matches(try SubjectKeys.handleIndex(handle, keyring: keyring), handleIndex)
        else {
            throw .tampered(what: "case handle")
        }
        return handle
    }
}
