import Foundation
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import Synchronization

/// The operations of `make bench` and the request bodies they send. The same bodies are decoded
/// and handed to the domain for the in-process limits, so both sides do the same work.
enum BenchOp: String, CaseIterable, Sendable {
    case oprf, enrol, checkup, status, due

    /// The mixed workload's shares (percent): mostly reads and check-ups, as a clinic day is.
    static let mix: [(BenchOp, Int)] = [(.status, 40), (.checkup, 25), (.oprf, 15), (.enrol, 10), (.due, 10)]

    static func pick(_ n: Int) -> BenchOp {
        var r = n % 100
        for (op, share) in mix {
            if r < share { return op }
            r -= share
        }
        return .status
    }
}

/// Case handles and OPRF elements the operations draw from, made before the timed phases.
///
/// - `duePool`: enrolled 30 days ago with no check-up: due in 60 days. The due list asks for
///   cases due before today + 61: this pool and the check-up pool, whose cases' next check-ups
///   are all long due (new enrolments are due in 90 days), so its answer has a fixed size.
/// - `checkupPool`: enrolled `checkupRoom` days ago. Check-ups go round-robin over it, each
///   case's dated one day after its last, as a clinic records them: the first on the day after
///   enrolment, the n-th n days after. (Until issue 16 they were all dated today and sent as
///   corrections, which a clinic rarely does, and which the summary path sends to the history.)
/// - status reads go round-robin over both pools.
final class Workload: Sendable {
    let today: Day
    let duePool: [String]
    let checkupPool: [String]
    /// The check-up pool's enrolment day.
    let checkupFrom: Day
    let statusPool: [String]
    let blindedElements: [[UInt8]]
    let blindedHex: [String]
    private let counter = Atomic<Int>(0)
    private let checkupCounter = Atomic<Int>(0)

    /// Days between the check-up pool's enrolment and today: room for that many check-ups per
    /// case (1.2 million over 2,000 cases), under the inactivity limit (730 days) and far from
    /// the remission that would complete a case (1,095).
    static let checkupRoom = 600

    init(today: Day, duePool: [String], checkupPool: [String], blindedElements: [[UInt8]]) {
        self.today = today
        self.duePool = duePool
        self.checkupPool = checkupPool
        self.checkupFrom = today.adding(days: -Self.checkupRoom)
        self.statusPool = duePool + checkupPool
        self.blindedElements = blindedElements
        self.blindedHex = blindedElements.map { Hex.encode($0) }
    }

    var checkupsSent: Int { checkupCounter.load(ordering: .relaxed) }

    func nextIndex() -> Int { counter.add(1, ordering: .relaxed).oldValue }

    /// Real blinded elements, made with the client half of RFC 9497 (as `anonreg linkage` does).
    static func blindedElements(_ count: Int) throws -> [[UInt8]] {
        try (0..<count).map { i in
            let blinded = try OPRFClient.blind(input: Array("bench|person-\(i)|1970-01-01".utf8))
            return blinded.blindedElement
        }
    }

    static func enrolBody(enrolledOn: Day) -> String {
        "{\"consent\":{\"form\":\"FORM-BENCH\",\"givenOn\":\"\(enrolledOn)\",\"method\":\"written\",\"scope\":[\"monitoring\",\"statistics\"]},"
            + "\"category\":\"dependence\",\"enrolledOn\":\"\(enrolledOn)\"}"
    }

    static func checkupBody(on day: Day) -> String {
        "{\"on\":\"\(day)\",\"outcome\":\"remission\",\"substances\":[],\"treatment\":[\"methadone\",\"psychosocial\"],"
            + "\"note\":\"bench: stable on methadone, attended group sessions\"}"
    }

    var dueBefore: Day { today.adding(days: 61) }

    // MARK: - Over the socket

    func request(_ op: BenchOp) -> BenchRequest {
        let n = nextIndex()
        switch op {
        case .oprf:
            return BenchRequest(
                method: "POST", target: "/v1/oprf/evaluate",
                body: Array("{\"blindedElement\":\"\(blindedHex[n % blindedHex.count])\"}".utf8))
        case .enrol:
            return BenchRequest(method: "POST", target: "/v1/subjects", body: Array(Self.enrolBody(enrolledOn: today).utf8))
        case .checkup:
            let (handle, day) = nextCheckup()
            return BenchRequest(method: "POST", target: "/v1/cases/\(handle)/checkups", body: Array(Self.checkupBody(on: day).utf8))
        case .status:
            return BenchRequest(method: "GET", target: "/v1/cases/\(statusPool[n % statusPool.count])")
        case .due:
            return BenchRequest(method: "GET", target: "/v1/due?before=\(dueBefore)")
        }
    }

    func mixed() -> (String, BenchRequest) {
        let op = BenchOp.pick(nextIndex() &* 37)
        return (op.rawValue, request(op))
    }

    /// The next check-up: its case, and its date, one day after that case's last.
    func nextCheckup() -> (handle: String, on: Day) {
        let c = checkupCounter.add(1, ordering: .relaxed).oldValue
        return (checkupPool[c % checkupPool.count], min(today, checkupFrom.adding(days: 1 + c / checkupPool.count)))
    }
}
