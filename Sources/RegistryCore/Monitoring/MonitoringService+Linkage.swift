import RegistryProtocol

/// The linkage value a clinic sends with an enrolment: the 64-byte RFC 9497 OPRF output, as 128
/// hex digits (docs/PROTOCOL.md §9). It is parsed here and used only for the month's
/// unique-person tag, with `statistics` consent (docs/CRYPTO.md §Unique persons).
extension MonitoringService {
    static func parseLinkage(_ hex: String) throws(DomainError) -> [UInt8] {
        let bytes = Array(hex.utf8)
        guard bytes.count == 128 else {
            throw DomainError(.badRequest, "invalid_linkage", "linkage must be 128 hex digits (the 64-byte OPRF output)")
        }
        var out = [UInt8]()
        out.reserveCapacity(64)
        var i = 0
        while i < 128 {
            guard let h = nibble(bytes[i]), let l = nibble(bytes[i + 1]) else {
                throw DomainError(.badRequest, "invalid_linkage", "linkage must be 128 hex digits (the 64-byte OPRF output)")
            }
            out.append(h << 4 | l)
            i += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
