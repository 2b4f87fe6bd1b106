import RegistryCore
import RegistryProtocol

typealias SweepResponse = SweepResponseWire

extension SweepResponseWire {
    init(_ report: Sweeper.Report) {
        self.init(reviewed: report.reviewed, kept: report.kept, erasedCompleted: report.erasedCompleted,
                  erasedCap: report.erasedCap, erasedInactive: report.erasedInactive, failed: report.failed)
    }
}
