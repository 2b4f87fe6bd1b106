import AnonregTestSupport
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Testing

/// The row MACs' messages, built here byte by byte from docs/CRYPTO.md §Authenticated columns,
/// must be the ones RowIntegrity MACs: it appends them into one buffer for speed (the due list
/// computes two per row), and a registry written by an earlier release must still verify.
struct RowMACLayoutTests {
    static func be<T: FixedWidthInteger>(_ value: T) -> [UInt8] { withUnsafeBytes(of: value.bigEndian) { Array($0) } }
    static func lp(_ text: String) -> [UInt8] { be(UInt32(text.utf8.count)) + Array(text.utf8) }

    @Test func subjectAndLinkMACsFollowTheDocumentedLayout() throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let sid = (0..<16).map { UInt8($0 &* 7) }
        let codeIndex = (0..<32).map { UInt8($0 &+ 100) }
        let head = (0..<32).map { UInt8(255 - $0) }
        for columns in [
            SubjectColumns(status: .active, nextDue: Day("2027-01-05"), reviewOn: Day("2029-12-31")),
            SubjectColumns(status: .completed, nextDue: nil, reviewOn: Day("0042-03-07")),
            SubjectColumns(status: .active, nextDue: nil, reviewOn: nil),
        ] {
            let message =
                Self.be(UInt64(9_000_000_001)) + sid + codeIndex + Self.be(UInt32(3)) + Self.lp(columns.status.rawValue)
                + Self.lp(columns.nextDue?.description ?? "") + Self.lp(columns.reviewOn?.description ?? "") + Self.be(UInt64(417)) + head
            let expected = try KeyedHash.hash(label: Label.subjectRow, message, key: keyring.rowMACKey.bytes)
            let mac = try RowIntegrity.subjectMAC(
                id: 9_000_000_001, sid: sid, codeIndex: codeIndex, kekVersion: 3, columns: columns, records: 417, recordsHead: head,
                keyring: keyring)
            #expect(mac == expected)
        }
        let handleIndex = (0..<32).map { UInt8($0 ^ 0x5A) }
        for clinic in ["local", "clinic-north", "ы"] {
            let message = Self.be(UInt64(77)) + handleIndex + Self.lp(clinic) + sid
            let expected = try KeyedHash.hash(label: Label.caseLinkRow, message, key: keyring.rowMACKey.bytes)
            #expect(try RowIntegrity.linkMAC(linkID: 77, handleIndex: handleIndex, clinic: clinic, sid: sid, keyring: keyring) == expected)
        }
    }
}
