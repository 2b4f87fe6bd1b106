import RegistryCore
import RegistryKeyring

/// One batch of the full integrity check (docs/CRYPTO.md §Authenticated columns), whatever the
/// backend: it feeds the batch's subject rows, then their record rows in (subject, id) order,
/// then their case links, and reads which subjects and links failed.
///
/// A subject fails when its row does not decode or authenticate (MAC, erasure ledger), or when
/// the record chain recomputed from its record rows is not the count and head its row names. A
/// case link fails when its MAC does not hold for the subject it points at; a link of a subject
/// that failed is not counted apart, since it goes with the subject's erasure.
package struct IntegrityScan {
    private let keyring: Keyring
    private let erased: ErasedSubjects?
    /// The batch's subject ids, in the order fed.
    package private(set) var order: [Int64] = []
    private var authentic: [Int64: (sid: [UInt8], records: Int, head: [UInt8])] = [:]
    private var chains: [Int64: (count: Int, head: [UInt8])] = [:]
    private var failed = Set<Int64>()
    private var recordsClosed = false
    /// How many case links were fed, and the ids of those that failed.
    package private(set) var links = 0
    package private(set) var failedLinks: [Int64] = []

    package init(keyring: Keyring, erased: ErasedSubjects?) {
        self.keyring = keyring
        self.erased = erased
    }

    /// The most failures one check acts on: more than 10 and more than a quarter of the subjects
    /// is a wrong keyring or a fault, not an attack on some rows ("Brake").
    package static func brake(checked: Int) -> Int { max(10, checked / 4) }

    /// Feeds the subject row with id `id`; `read` decodes it (and may throw).
    package mutating func subject(id: Int64, _ read: () throws -> any SealedSubjectRow) {
        order.append(id)
        do {
            let row = try read()
            try row.authenticate(keyring: keyring, erased: erased)
            authentic[id] = (row.sid, row.records, row.recordsHead)
        } catch {
            failed.insert(id)
        }
    }

    /// Feeds one record row of the batch; they come in (subject id, record id) order.
    package mutating func record(subjectID: Int64, id: Int64, kind: String, schemaVersion: Int64) throws(StorageError) {
        var chain = chains[subjectID] ?? (0, RowIntegrity.genesis)
        chain.head = try RowIntegrity.chain(
            chain.head, recordID: id, kind: kind, schemaVersion: UInt16(clamping: schemaVersion), keyring: keyring)
        chain.count += 1
        chains[subjectID] = chain
    }

    /// After the last record row: every authentic subject's chain against its row.
    private mutating func closeRecords() {
        guard !recordsClosed else { return }
        recordsClosed = true
        for (id, row) in authentic {
            let chain = chains[id] ?? (0, RowIntegrity.genesis)
            if chain.count != row.records || !RowIntegrity.matches(chain.head, row.head) { failed.insert(id) }
        }
    }

    /// Feeds one case link of the batch (after every record row); `read` decodes it.
    package mutating func link(id: Int64, subjectID: Int64, _ read: () throws -> any SealedCaseLinkRow) {
        closeRecords()
        links += 1
        guard let subject = authentic[subjectID], !failed.contains(subjectID) else { return }
        do { try read().authenticate(sid: subject.sid, keyring: keyring) } catch { failedLinks.append(id) }
    }

    /// The batch's subjects that failed, in the order fed.
    package mutating func failedSubjects() -> [Int64] {
        closeRecords()
        return order.filter { failed.contains($0) }
    }
}
