import Foundation

/// Decodes a `Decodable` from TOML (TOMLParser) and refuses every key the type did not ask for,
/// at any depth: a misspelt key in anonreg.toml is an error, never silently ignored.
enum TOMLStrictDecoder {
    /// Keys of the document that the type never read, as dotted paths.
    struct UnknownKeys: Error, Equatable {
        var keys: [String]
    }

    static func decode<T: Decodable>(_ type: T.Type, from text: String) throws -> T {
        let root = try TOMLParser.parse(text)
        let tracker = Tracker()
        let value = try T(from: ValueDecoder(value: .table(root), codingPath: [], tracker: tracker))
        var unknown: [String] = []
        tracker.unread(in: root, path: [], into: &unknown)
        guard unknown.isEmpty else { throw UnknownKeys(keys: unknown.sorted()) }
        return value
    }

    /// The paths the decoding asked for.
    final class Tracker {
        var read: Set<[String]> = []

        func unread(in table: [String: TOMLValue], path: [String], into out: inout [String]) {
            for (key, value) in table {
                let child = path + [key]
                guard read.contains(child) else {
                    out.append(child.joined(separator: "."))
                    continue
                }
                unread(in: value, path: child, into: &out)
            }
        }

        func unread(in value: TOMLValue, path: [String], into out: inout [String]) {
            switch value {
            case .table(let table): unread(in: table, path: path, into: &out)
            case .array(let items):
                for (n, item) in items.enumerated() { unread(in: item, path: path + [String(n)], into: &out) }
            default: break
            }
        }
    }

    struct IndexKey: CodingKey {
        var stringValue: String
        var intValue: Int?
        init(_ n: Int) {
            stringValue = String(n)
            intValue = n
        }
        init?(stringValue: String) { nil }
        init?(intValue: Int) { self.init(intValue) }
    }

    struct ValueDecoder: Decoder {
        let value: TOMLValue
        let codingPath: [any CodingKey]
        let tracker: Tracker
        var userInfo: [CodingUserInfoKey: Any] { [:] }

        var path: [String] { codingPath.map(\.stringValue) }

        func container<Key: CodingKey>(keyedBy type: Key.Type) throws -> KeyedDecodingContainer<Key> {
            guard case .table(let table) = value else {
                throw DecodingError.typeMismatch(
                    [String: Any].self, .init(codingPath: codingPath, debugDescription: "expected a table, found \(value.typeName)"))
            }
            return KeyedDecodingContainer(Keyed<Key>(table: table, decoder: self))
        }

        func unkeyedContainer() throws -> any UnkeyedDecodingContainer {
            guard case .array(let items) = value else {
                throw DecodingError.typeMismatch(
                    [Any].self, .init(codingPath: codingPath, debugDescription: "expected an array, found \(value.typeName)"))
            }
            return Unkeyed(items: items, decoder: self)
        }

        func singleValueContainer() throws -> any SingleValueDecodingContainer { Single(decoder: self) }

        func child(_ value: TOMLValue, key: any CodingKey) -> ValueDecoder {
            ValueDecoder(value: value, codingPath: codingPath + [key], tracker: tracker)
        }

        func mismatch<T>(_ type: T.Type) -> DecodingError {
            .typeMismatch(type, .init(codingPath: codingPath, debugDescription: "expected \(type), found \(value.typeName)"))
        }

        func scalar<T: Decodable>(_ type: T.Type) throws -> T {
            switch (value, type) {
            case (.string(let s), is String.Type): return s as! T
            case (.boolean(let b), is Bool.Type): return b as! T
            case (.float(let d), is Double.Type): return d as! T
            case (.integer(let n), is Double.Type): return Double(n) as! T
            case (.integer(let n), _):
                if let converted = Self.integer(n, as: type) { return converted }
                if Self.isInteger(type) {
                    throw DecodingError.dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(n) does not fit"))
                }
                throw mismatch(type)
            default:
                if type == String.self || type == Bool.self || type == Double.self || Self.isInteger(type) { throw mismatch(type) }
                return try T(from: self)
            }
        }

        static func isInteger<T>(_ type: T.Type) -> Bool {
            type == Int.self || type == Int64.self || type == Int32.self || type == Int16.self || type == Int8.self
                || type == UInt.self || type == UInt64.self || type == UInt32.self || type == UInt16.self || type == UInt8.self
        }

        static func integer<T>(_ n: Int64, as type: T.Type) -> T? {
            switch type {
            case is Int.Type: Int(exactly: n) as? T
            case is Int64.Type: n as? T
            case is Int32.Type: Int32(exactly: n) as? T
            case is Int16.Type: Int16(exactly: n) as? T
            case is Int8.Type: Int8(exactly: n) as? T
            case is UInt.Type: UInt(exactly: n) as? T
            case is UInt64.Type: UInt64(exactly: n) as? T
            case is UInt32.Type: UInt32(exactly: n) as? T
            case is UInt16.Type: UInt16(exactly: n) as? T
            case is UInt8.Type: UInt8(exactly: n) as? T
            default: nil
            }
        }
    }

    struct Keyed<Key: CodingKey>: KeyedDecodingContainerProtocol {
        let table: [String: TOMLValue]
        let decoder: ValueDecoder
        var codingPath: [any CodingKey] { decoder.codingPath }
        var allKeys: [Key] { table.keys.sorted().compactMap { Key(stringValue: $0) } }

        func mark(_ key: Key) { decoder.tracker.read.insert(decoder.path + [key.stringValue]) }

        func contains(_ key: Key) -> Bool {
            mark(key)
            return table[key.stringValue] != nil
        }

        func child(_ key: Key) throws -> ValueDecoder {
            mark(key)
            guard let value = table[key.stringValue] else {
                throw DecodingError.keyNotFound(key, .init(codingPath: codingPath, debugDescription: "missing key \(key.stringValue)"))
            }
            return decoder.child(value, key: key)
        }

        func decodeNil(forKey key: Key) throws -> Bool {
            mark(key)
            return table[key.stringValue] == nil
        }

        func decode<T: Decodable>(_ type: T.Type, forKey key: Key) throws -> T { try child(key).scalar(type) }

        func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type, forKey key: Key) throws -> KeyedDecodingContainer<
            NestedKey
        > {
            try child(key).container(keyedBy: type)
        }

        func nestedUnkeyedContainer(forKey key: Key) throws -> any UnkeyedDecodingContainer { try child(key).unkeyedContainer() }
        func superDecoder() throws -> any Decoder { decoder }
        func superDecoder(forKey key: Key) throws -> any Decoder { try child(key) }
    }

    struct Unkeyed: UnkeyedDecodingContainer {
        let items: [TOMLValue]
        let decoder: ValueDecoder
        var currentIndex = 0
        var codingPath: [any CodingKey] { decoder.codingPath }
        var count: Int? { items.count }
        var isAtEnd: Bool { currentIndex >= items.count }

        mutating func next() throws -> ValueDecoder {
            guard !isAtEnd else {
                throw DecodingError.valueNotFound(Any.self, .init(codingPath: codingPath, debugDescription: "the array has no more items"))
            }
            let key = IndexKey(currentIndex)
            decoder.tracker.read.insert(decoder.path + [key.stringValue])
            defer { currentIndex += 1 }
            return decoder.child(items[currentIndex], key: key)
        }

        mutating func decodeNil() throws -> Bool { false }
        mutating func decode<T: Decodable>(_ type: T.Type) throws -> T { try next().scalar(type) }
        mutating func nestedContainer<NestedKey: CodingKey>(keyedBy type: NestedKey.Type) throws -> KeyedDecodingContainer<NestedKey> {
            try next().container(keyedBy: type)
        }
        mutating func nestedUnkeyedContainer() throws -> any UnkeyedDecodingContainer { try next().unkeyedContainer() }
        mutating func superDecoder() throws -> any Decoder { try next() }
    }

    struct Single: SingleValueDecodingContainer {
        let decoder: ValueDecoder
        var codingPath: [any CodingKey] { decoder.codingPath }
        func decodeNil() -> Bool { false }
        func decode<T: Decodable>(_ type: T.Type) throws -> T { try decoder.scalar(type) }
    }
}
