import Foundation
import RegistryProtocol

/// Where "today" comes from: the host's local calendar day in the daemon, a fixed day in tests.
public protocol DayClock: Sendable {
    var today: Day { get }
}

/// The local calendar day of the host (`localtime_r`).
public struct SystemDayClock: DayClock {
    public init() {}
    public var today: Day {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return Day(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday))!
    }
}

/// A settable day for tests and simulations.
public final class FixedDayClock: DayClock, @unchecked Sendable {
    private let lock = NSLock()
    private var day: Day
    public init(_ day: Day) { self.day = day }
    public var today: Day { lock.withLock { day } }
    public func set(_ day: Day) { lock.withLock { self.day = day } }
    public func advance(days: Int) { lock.withLock { day = day.adding(days: days) } }
}
