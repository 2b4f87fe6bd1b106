import Testing

@testable import RegistryCrypto

struct CommitmentTests {
    /// Cross-computed with CPython: hashlib.blake2b(b"anonreg/v1/audit-subject-commit\x00" + msg,
    /// key=bytes(range(32)), digest_size=32) with msg = 32 bytes of 0xab.
    @Test func openingKnownAnswer() throws {
        let salt = (0..<32).map { UInt8($0) }
        let value = try KeyedHash.opening(label: Label.auditSubjectCommit, [UInt8](repeating: 0xab, count: 32), salt: salt)
        #expect(Hex.encode(value) == "2ba5e1629461df9a29f68a23db278a363fda99934d7fa08606bef37640b48d5c")
    }

    @Test func commitmentsOpenWithTheirSaltAndDoNotRepeat() throws {
        let message = [UInt8](repeating: 7, count: 32)
        let a = try KeyedHash.commit(label: Label.auditSubjectCommit, message)
        let b = try KeyedHash.commit(label: Label.auditSubjectCommit, message)
        #expect(a.salt.count == KeyedHash.keyBytes)
        #expect(a.value != b.value, "two commitments to one reference must not be linkable")
        #expect(a.value != message)
        #expect(try KeyedHash.opening(label: Label.auditSubjectCommit, message, salt: a.salt) == a.value)
        #expect(try KeyedHash.opening(label: Label.auditSubjectCommit, message, salt: b.salt) != a.value)
    }
}
