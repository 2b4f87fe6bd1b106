import RegistryCore
import RegistryProtocol

typealias SweepResponse = SweepResponseWire

extension SweepResponseWire {
    init(_ report: Sweeper.Report) {
        self.init(
            reviewed: report.reviewed, kept: report.kept, erasedCompleted: report.erasedCompleted,
            erasedCap: report.erasedCap, erasedInactive: report.erasedInactive, failed: report.failed,
            erasedIntegrity: report.erasedIntegrity, caseLinksRemoved: report.caseLinksRemoved,
            integritySuspended: report.integritySuspended)
    }
}

extension RegistryApp {
    /// Runs the sweeper of the current configuration (retention may change on SIGHUP) and
    /// reports what its integrity check erased or removed as a critical integrity failure.
    func sweep() async throws -> Sweeper.Report {
        let report = try await sweeper.run()
        integrityFailure(
            source: "check", count: report.erasedIntegrity + report.caseLinksRemoved,
            detail:
                "the sweeper's integrity check erased \(report.erasedIntegrity) subject(s) and removed \(report.caseLinksRemoved) case link(s)"
        )
        if report.integritySuspended > 0 {
            integrityFailure(
                source: "check", count: report.integritySuspended,
                detail:
                    "\(report.integritySuspended) rows fail their integrity check, too many to be tampering with a few rows: a wrong keyring or a fault is likelier. NOTHING WAS ERASED. Check the keys directory (anonreg keys status) and anonreg audit verify"
            )
        }
        return report
    }
}
