import AnonregTestSupport
import RegistryCore
import RegistryCrypto
import RegistryFormats
import RegistryKeyring
import RegistryProtocol
import Testing

/// `DueList.open` on every core must answer exactly what one thread answers: the same cases in
/// the same order, or the same error, whatever the number of cores and wherever rows fail
/// (docs/STORAGE.md §Due list). The rows here are sealed and MACed with a real keyring, as a
/// backend reads them, and then damaged at chosen positions of the answer.
struct DueListTests {
    struct Subject: SealedSubjectRow, Sendable {
        var id: Int64
        var sid: [UInt8]
        var codeIndex: [UInt8]
        var wrappedDEK: [UInt8]
        var kekVersion: Int
        var columns: SubjectColumns
        var records: Int
        var recordsHead: [UInt8]
        var rowMAC: [UInt8]
        var summary: [UInt8]?
    }

    struct Link: SealedCaseLinkRow, Sendable {
        var id: Int64
        var handleIndex: [UInt8]
        var clinic: String
        var rowMAC: [UInt8]
    }

    typealias Rows = [DueRow<Subject, Link>]

    /// `count` rows in the database's order, which is not the answer's: due days over a week,
    /// link ids shuffled. Returns them with the answer's order of row indices.
    static func rows(_ count: Int, keyring: Keyring, slab: SecureSlab) throws -> (Rows, [Int]) {
        var rows: Rows = []
        let first = Day("2027-01-01")!
        for i in 0..<count {
            let sid = (0..<16).map { UInt8(truncatingIfNeeded: i &* 131 &+ $0) }
            let (version, kek) = keyring.primaryKEK
            let dek = try SubjectKeys.newDEK(slab: slab)
            var subject = Subject(
                id: Int64(i + 1), sid: sid, codeIndex: try Sodium.randomBytes(count: 32),
                wrappedDEK: try SubjectKeys.wrap(dek, sid: sid, version: version, kek: kek), kekVersion: version,
                columns: SubjectColumns(status: .active, nextDue: first.adding(days: (i * 3) % 7), reviewOn: nil), records: 0,
                recordsHead: RowIntegrity.genesis, rowMAC: [], summary: nil)
            subject.rowMAC = try subject.expectedMAC(keyring: keyring)
            let handle = try SubjectKeys.newCaseHandle()
            let linkID = Int64((i * 7919) % 100_003 + 1)
            let handleIndex = try SubjectKeys.handleIndex(handle, keyring: keyring)
            let link = Link(
                id: linkID, handleIndex: handleIndex, clinic: "local",
                rowMAC: try RowIntegrity.linkMAC(linkID: linkID, handleIndex: handleIndex, clinic: "local", sid: sid, keyring: keyring))
            rows.append(
                DueRow(subject: subject, link: link, sealedHandle: try CaseHandleSeal.seal(handle, sid: sid, linkID: linkID, dek: dek)))
        }
        let order = rows.indices.sorted {
            (rows[$0].subject.columns.nextDue!, rows[$0].link.id) < (rows[$1].subject.columns.nextDue!, rows[$1].link.id)
        }
        return (rows, order)
    }

    static func outcome(_ rows: Rows, keyring: Keyring, slab: SecureSlab, cores: Int) -> Result<[DueCase], StorageError> {
        do { return .success(try DueList.open(rows, keyring: keyring, erased: nil, slab: slab, cores: cores)) } catch {
            return .failure(error)
        }
    }

    @Test(arguments: [0, 1, 63, 127, 128, 129, 200, 333, 1000])
    func everyCoreCountGivesTheOneThreadAnswer(_ count: Int) throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let slab = try SecureSlab(slotBytes: 32, slotCount: 8)
        let (rows, order) = try Self.rows(count, keyring: keyring, slab: slab)
        let serial = try DueList.open(rows, keyring: keyring, erased: nil, slab: slab, cores: 1)
        #expect(serial.map(\.nextDue) == order.map { rows[$0].subject.columns.nextDue! })
        #expect(Set(serial.map(\.caseHandle)).count == count)
        for cores in [2, 3, 7] {
            #expect(try DueList.open(rows, keyring: keyring, erased: nil, slab: slab, cores: cores) == serial, "\(cores) cores")
        }
        #expect(slab.available == 8, "every data key was given back")
    }

    /// Rows damaged at positions of the answer in different slices, each with its own error:
    /// the list fails with the error of the lowest position, on any number of cores.
    @Test(arguments: [[0], [999], [500], [130, 700], [700, 130], [1, 2, 998], [333, 334, 335]])
    func theFirstFailureInTheAnswersOrderIsTheError(_ positions: [Int]) throws {
        let tmp = TemporaryDirectory()
        let keyring = try Keyring.create(in: tmp.sub("keys"))
        let slab = try SecureSlab(slotBytes: 32, slotCount: 8)
        var (rows, order) = try Self.rows(1000, keyring: keyring, slab: slab)
        // Three kinds of damage, so the error says which row won: a subject MAC, a link MAC,
        // a sealed handle.
        for (n, position) in positions.enumerated() {
            let index = order[position]
            switch n % 3 {
            case 0: rows[index].subject.codeIndex[0] ^= 1
            case 1: rows[index].link.clinic = "elsewhere"
            default: rows[index].sealedHandle[30] ^= 1
            }
        }
        let serial = Self.outcome(rows, keyring: keyring, slab: slab, cores: 1)
        let expected: StorageError =
            switch positions.firstIndex(of: positions.min()!)! % 3 {
            case 0: .integrity(what: "subject row")
            case 1: .integrity(what: "case link row")
            default: .tampered(what: "case handle")
            }
        #expect(serial == .failure(expected))
        for cores in [2, 3, 7] {
            #expect(Self.outcome(rows, keyring: keyring, slab: slab, cores: cores) == serial, "\(cores) cores")
        }
        #expect(slab.available == 8, "every data key was given back")
    }
}
