import RegistryCore
import RegistryProtocol

typealias SweepResponse = SweepResponseWire

extension SweepResponseWire {
    init(_ report: Sweeper.Report) {
        self.init(reviewed: report.reviewed, kept: report.kept, erasedCompleted: report.erasedCompleted,
                  erasedCap: report.erasedCap, erasedInactive: report.erasedInactive, failed: report.failed,
                  erasedIntegrity: report.erasedIntegrity, caseLinksRemoved: report.caseLinksRemoved)
    }
}

extension RegistryApp {
    /// Runs the sweeper of the current configuration (retention may change on SIGHUP) and
    /// reports what its integrity check erased or removed as a critical integrity failure.
    func sweep() async throws -> Sweeper.Report {
        let report = try await sweeper.run()
        integrityFailure(source: "check", count: report.erasedIntegrity + report.caseLinksRemoved,
                         detail: "the sweeper's integrity check erased \(report.erasedIntegrity) subject(s) and removed \(report.caseLinksRemoved) case link(s)")
        return report
    }
}
