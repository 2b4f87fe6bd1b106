import Foundation
import RegistryCore

/// Edits the `[clinics.ID]` tables of an anonreg.toml as text, so every comment and every other
/// line stays as the admin wrote it. Each result is parsed and validated before it is returned.
public enum ConfigEditor {
    public enum EditError: Error, Equatable, CustomStringConvertible {
        case invalidID(String)
        case alreadyExists(String)
        case notFound(String)
        case needsMember
        case invalidResult(String)

        public var description: String {
            switch self {
            case .invalidID(let id): "clinic id \"\(id)\" must be 1-64 of a-z 0-9 - _"
            case .alreadyExists(let id): "clinic \(id) already exists; remove it first or choose another id"
            case .notFound(let id): "there is no clinic \(id) in the configuration"
            case .needsMember: "give --uid, --gid or both"
            case .invalidResult(let why): "the edited configuration would be invalid: \(why)"
            }
        }
    }

    /// Adds `[clinics.ID]` after the last clinic table (or before `[rate_limits]`).
    public static func addClinic(_ text: String, id: String, uids: [UInt32], gids: [UInt32], path: String) throws(EditError) -> String {
        guard ClinicID(id) != nil else { throw .invalidID(id) }
        guard !uids.isEmpty || !gids.isEmpty else { throw .needsMember }
        var lines = text.components(separatedBy: "\n")
        if lines.contains(where: { header($0) == "clinics.\(id)" }) { throw .alreadyExists(id) }
        let block = [
            "[clinics.\(id)]",
            "uids = [\(uids.map(String.init).joined(separator: ", "))]",
            "gids = [\(gids.map(String.init).joined(separator: ", "))]",
            "",
        ]
        let insertAt: Int
        if let last = lines.lastIndex(where: { header($0)?.hasPrefix("clinics.") == true }) {
            insertAt = endOfTable(lines, startingAt: last)
        } else if let limits = lines.firstIndex(where: { header($0) == "rate_limits" }) {
            insertAt = startOfCommentBlock(lines, above: limits)
        } else {
            insertAt = lines.count
        }
        lines.insert(contentsOf: block, at: insertAt)
        let result = lines.joined(separator: "\n")
        try validate(result, path: path)
        return result
    }

    /// Removes `[clinics.ID]` and its keys. Comments above the next table stay with it.
    public static func removeClinic(_ text: String, id: String, path: String) throws(EditError) -> String {
        var lines = text.components(separatedBy: "\n")
        guard let start = lines.firstIndex(where: { header($0) == "clinics.\(id)" }) else { throw .notFound(id) }
        let end = endOfTable(lines, startingAt: start)
        lines.removeSubrange(start..<end)
        let result = lines.joined(separator: "\n")
        try validate(result, path: path)
        return result
    }

    static func validate(_ text: String, path: String) throws(EditError) {
        do { _ = try DaemonConfig.parse(text, path: path) } catch { throw .invalidResult(error.description) }
    }

    /// The table name of a `[name]` header line, or nil.
    static func header(_ line: String) -> String? {
        let t = line.trimmingCharacters(in: .whitespaces)
        guard t.hasPrefix("["), !t.hasPrefix("[["), let close = t.firstIndex(of: "]") else { return nil }
        return String(t[t.index(after: t.startIndex)..<close]).trimmingCharacters(in: .whitespaces)
    }

    /// The index just past the table starting at `start`: before the next header and the comment
    /// block directly above it.
    static func endOfTable(_ lines: [String], startingAt start: Int) -> Int {
        var next = start + 1
        while next < lines.count, header(lines[next]) == nil { next += 1 }
        return next == lines.count ? next : startOfCommentBlock(lines, above: next)
    }

    /// The first line of the comment lines (and blank lines between them) directly above `index`.
    static func startOfCommentBlock(_ lines: [String], above index: Int) -> Int {
        var i = index
        while i > 0, lines[i - 1].trimmingCharacters(in: .whitespaces).hasPrefix("#") { i -= 1 }
        return i
    }
}
