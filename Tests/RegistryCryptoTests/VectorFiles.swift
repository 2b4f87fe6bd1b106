import Foundation

/// Loads a JSON vector file from this target's Resources folder.
enum VectorFiles {
    static func url(_ name: String) throws -> URL {
        guard
            let url = Bundle.module.url(forResource: name, withExtension: nil, subdirectory: "Resources")
                ?? Bundle.module.url(forResource: name, withExtension: nil)
        else { throw VectorFileMissing(name: name) }
        return url
    }

    static func load<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(contentsOf: url(name)))
    }

    struct VectorFileMissing: Error { let name: String }
}

func hex(_ s: String) -> [UInt8] {
    var out = [UInt8]()
    var chars = Array(s.utf8)[...]
    while chars.count >= 2 {
        out.append(UInt8(String(decoding: chars.prefix(2), as: UTF8.self), radix: 16)!)
        chars = chars.dropFirst(2)
    }
    return out
}
