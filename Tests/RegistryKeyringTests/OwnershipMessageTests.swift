import Testing

@testable import RegistryKeyring

/// Issue 22 §1: no message tells root to take the service user's files (anonregd, running as
/// that user, would lose its keys); a message to another user still names the owner fix.
struct OwnershipMessageTests {
    @Test func rootIsNeverToldToChownTheServiceFilesToItself() {
        let text = KeyringError.wrongOwner(path: "/var/lib/anonreg/keys", owner: 998, expected: 0).description
        #expect(!text.contains("chown 0"), "\(text)")
        #expect(!text.contains("Fix: chown"), "\(text)")
        #expect(text.contains("Do not chown it to root"))
        #expect(text.contains("uid 998"))
    }

    @Test func anotherUserStillGetsTheOwnerFix() {
        let text = KeyringError.wrongOwner(path: "/k", owner: 0, expected: 998).description
        #expect(text.contains("Fix: chown 998 /k"))
    }
}
