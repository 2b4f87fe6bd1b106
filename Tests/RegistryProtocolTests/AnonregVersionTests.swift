import RegistryProtocol
import Testing

struct AnonregVersionTests {
    @Test func versionIsSemantic() {
        let parts = AnonregVersion.software.split(separator: ".")
        #expect(parts.count == 3)
        #expect(parts.allSatisfy { Int($0) != nil })
        #expect(AnonregVersion.protocolVersion == 1)
    }
}
