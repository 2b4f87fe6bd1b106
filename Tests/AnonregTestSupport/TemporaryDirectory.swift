import Foundation

/// A fresh directory under /tmp, removed when the test ends.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String

    /// A fresh directory under `base` (default /tmp; /dev/shm for write-heavy simulations).
    public init(base: String = "/tmp") {
        var template = Array("\(base)/anonreg-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    public func sub(_ name: String) -> String { path + "/" + name }

    public func mode(of path: String) -> Int {
        var st = stat()
        precondition(lstat(path, &st) == 0)
        return Int(st.st_mode & 0o7777)
    }

    public func bytes(of path: String) -> [UInt8] { Array(FileManager.default.contents(atPath: path) ?? Data()) }

    /// Every regular file below the directory, recursively.
    public func allFiles() -> [String] {
        guard let walker = FileManager.default.enumerator(atPath: path) else { return [] }
        return walker.compactMap { $0 as? String }.map { path + "/" + $0 }.filter {
            var st = stat()
            return lstat($0, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG
        }.sorted()
    }

    /// Whether any file below the directory contains `needle`, byte-wise; returns the files.
    public func filesContaining(_ needle: [UInt8]) -> [String] {
        allFiles().filter { Bytes.contains(bytes(of: $0), needle) }
    }

    /// Writes a file with mode 0600 (as the keyring requires).
    public func write(_ bytes: [UInt8], to path: String) {
        FileManager.default.createFile(atPath: path, contents: Data(bytes), attributes: [.posixPermissions: 0o600])
        chmod(path, 0o600)
    }

    public func listing(_ dir: String) -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).sorted() }
}

/// Byte-string search for plaintext scans.
public enum Bytes {
    public static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        let first = needle[0]
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first, Array(haystack[i..<(i + needle.count)]) == needle { return true }
            i += 1
        }
        return false
    }
}
