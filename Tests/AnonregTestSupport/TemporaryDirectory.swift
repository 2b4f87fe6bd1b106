import Foundation

/// A fresh directory under /tmp, removed when the test ends.
public final class TemporaryDirectory: @unchecked Sendable {
    public let path: String
    private let keptLock = NSLock()
    private var kept: [AnyObject] = []

    /// A fresh directory under `base` (default /tmp; /dev/shm for write-heavy simulations).
    public init(base: String = "/tmp") {
        var template = Array("\(base)/anonreg-test-XXXXXX".utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(cString: template.withUnsafeBufferPointer { $0.baseAddress! })
    }

    deinit { try? FileManager.default.removeItem(atPath: path) }

    /// Keeps `object` alive as long as the directory (a throwaway database server that belongs
    /// to it, say); it is released when the directory is removed.
    public func keep(_ object: AnyObject) {
        keptLock.lock()
        defer { keptLock.unlock() }
        kept.append(object)
    }

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
    /// Knuth–Morris–Pratt: linear in the haystack. (It was a byte-by-byte scan that built an
    /// array at every first-byte match, O(n·m), which dominated ThreeYearSimulationTests under
    /// sanitizers.)
    public static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard !needle.isEmpty, haystack.count >= needle.count else { return false }
        // failure[i]: length of the longest proper prefix of needle[0...i] that is also its suffix.
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in 1..<needle.count {
            while k > 0, needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        k = 0
        return haystack.withUnsafeBufferPointer { h in
            for byte in h {
                while k > 0, byte != needle[k] { k = failure[k - 1] }
                if byte == needle[k] { k += 1 }
                if k == needle.count { return true }
            }
            return false
        }
    }
}
