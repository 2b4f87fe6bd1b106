/// Why a request body was refused before any domain logic ran. Each case maps to a 400 answer
/// with a snake_case code (docs/PROTOCOL.md §Errors). A message names only fields the daemon
/// knows: an unknown field's name is never repeated (a patient code sent as a JSON key or a query
/// key must not come back), only where it was and what is accepted there.
public enum WireError: Error, Equatable, Sendable {
    /// A field the endpoint does not accept, in `container` (a known field path, or "body" /
    /// "query"), which accepts `accepted`.
    case unknownField(in: String, accepted: [String])
    case missingField(String)
    case wrongType(String)
    case invalidDate(String)
    case invalidMonth(String)
    case invalidValue(field: String, reason: String)

    public var code: String {
        switch self {
        case .unknownField: "unknown_field"
        case .missingField: "missing_field"
        case .wrongType: "wrong_type"
        case .invalidDate: "invalid_date"
        case .invalidMonth: "invalid_month"
        case .invalidValue: "invalid_value"
        }
    }

    public var message: String {
        switch self {
        case .unknownField(let container, let accepted):
            Self.unknownFieldMessage(in: container, accepted: accepted)
        case .missingField(let f): "missing required field \(WireError.printable(f))"
        case .wrongType(let f): "field \(WireError.printable(f)) has the wrong type"
        case .invalidDate(let f): "field \(WireError.printable(f)) must be a real date written YYYY-MM-DD"
        case .invalidMonth(let f): "field \(WireError.printable(f)) must be a month written YYYY-MM"
        case .invalidValue(let f, let reason): "field \(WireError.printable(f)) \(reason)"
        }
    }

    static func unknownFieldMessage(in container: String, accepted: [String]) -> String {
        let place =
            switch container {
            case "body": "the body"
            case "query": "the query"
            default: WireError.printable(container)
            }
        let known =
            accepted.isEmpty
            ? (container == "query" ? "this endpoint takes no query parameters" : "this endpoint takes no body")
            : "it accepts only " + accepted.map { WireError.printable($0) }.joined(separator: ", ")
        return "\(place) has a field this endpoint does not know (its name is not repeated); \(known)"
    }

    /// A field path as it may be shown: dotted identifiers up to 64 characters, else "(unnamed)".
    static func printable(_ path: String) -> String {
        let ok =
            !path.isEmpty && path.utf8.count <= 64
            && path.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z")) || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9")) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
                    || $0 == UInt8(ascii: "[") || $0 == UInt8(ascii: "]")
            }
        return ok ? "\"\(path)\"" : "(unnamed)"
    }

    /// The dotted path of a coding path, e.g. `consent.givenOn`.
    public static func path(_ codingPath: [any CodingKey], _ last: (any CodingKey)? = nil) -> String {
        var out = ""
        for key in codingPath + (last.map { [$0] } ?? []) {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += (out.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return out
    }
}

/// A coding key for any field name, used to find fields a type does not declare.
struct AnyCodingKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

extension Decoder {
    /// Refuses any field not in `Keys` (protocol v1 is strict: a misspelt field is an error, not
    /// a silently ignored value).
    public func rejectUnknownFields<Keys: CodingKey & CaseIterable>(_ keys: Keys.Type) throws {
        let container: KeyedDecodingContainer<AnyCodingKey>
        do { container = try self.container(keyedBy: AnyCodingKey.self) } catch {
            throw WireError.wrongType(WireError.path(codingPath).isEmpty ? "body" : WireError.path(codingPath))
        }
        let accepted = Keys.allCases.map(\.stringValue)
        let allowed = Set(accepted)
        for key in container.allKeys where !allowed.contains(key.stringValue) {
            let parent = WireError.path(codingPath)
            throw WireError.unknownField(in: parent.isEmpty ? "body" : parent, accepted: accepted)
        }
    }
}

extension KeyedDecodingContainer {
    /// Decodes a required field, turning decoding failures into `WireError`s with the field path.
    public func field<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T {
        guard contains(key) else { throw WireError.missingField(WireError.path(codingPath, key)) }
        do {
            return try decode(T.self, forKey: key)
        } catch let error as WireError {
            throw error
        } catch DecodingError.valueNotFound {
            throw WireError.missingField(WireError.path(codingPath, key))
        } catch {
            throw WireError.wrongType(WireError.path(codingPath, key))
        }
    }

    /// Decodes an optional field (absent or null is nil).
    public func optionalField<T: Decodable>(_ type: T.Type, _ key: Key) throws -> T? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        return try field(T.self, key)
    }
}
