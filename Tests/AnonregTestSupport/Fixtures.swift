import Foundation

/// Files committed under Tests/Fixtures (made by earlier releases, for upgrade tests).
public enum Fixtures {
    /// The directory `Tests/Fixtures/NAME` of this checkout.
    public static func directory(_ name: String) -> String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures").appendingPathComponent(name).path
    }

    /// The state of `previous-release` (a keys directory, a database and a backup made by the
    /// release before linkage hashes were dropped and rows were MACed), copied into `directory`
    /// with the modes the keyring requires. Its `fixture.json` says what it holds.
    public static func copyPreviousRelease(to directory: String) throws -> [String: Any] {
        let source = Self.directory("previous-release")
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory + "/keys", withIntermediateDirectories: true)
        chmod(directory, 0o750)
        chmod(directory + "/keys", 0o700)
        for name in try fm.contentsOfDirectory(atPath: source + "/keys") {
            try fm.copyItem(atPath: source + "/keys/" + name, toPath: directory + "/keys/" + name)
            chmod(directory + "/keys/" + name, 0o600)
        }
        for name in ["registry.sqlite", "before-withdrawal.anrg"] {
            try fm.copyItem(atPath: source + "/" + name, toPath: directory + "/" + name)
            chmod(directory + "/" + name, 0o600)
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: source + "/fixture.json"))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}
