import Foundation
import RegistryCore

extension AuditChain {
    /// An entry's time as every backend writes it: `YYYY-MM-DDTHH:MM:SSZ` (RFC 3339, UTC, whole
    /// seconds), the text ISO8601DateFormatter with `.withInternetDateTime` gives, without
    /// building a formatter for every entry (that was a measurable share of each request:
    /// docs/PERFORMANCE.md). It is hashed as written (docs/CRYPTO.md §Audit).
    package static func timestamp(_ date: Date = Date()) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func pad(_ value: Int32, _ width: Int) -> String {
            let digits = String(value)
            return String(repeating: "0", count: max(0, width - digits.count)) + digits
        }
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))"
            + "T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))Z"
    }
}
