import Testing

@testable import RegistryCrypto

/// Data-key slots (docs/CRYPTO.md §Secret memory): a slot is zeroed when its owner is dropped,
/// is never lent twice at once, and exhaustion falls back to an allocation of its own.
struct SecureSlabTests {
    @Test func aDroppedSecretLeavesItsSlotZeroedAndFree() throws {
        let slab = try SecureSlab(slotBytes: 32, slotCount: 1)
        do {
            let secret = try SecretBytes(count: 32, from: slab) { $0.initializeMemory(as: UInt8.self, repeating: 0xA5) }
            #expect(slab.available == 0)
            #expect(!slab.slotIsZero(0))
            let bytes = secret.withUnsafeBytes { Array($0) }
            #expect(bytes == [UInt8](repeating: 0xA5, count: 32))
        }
        #expect(slab.available == 1)
        #expect(slab.slotIsZero(0))
    }

    @Test func aFillThatThrowsWipesAndReturnsTheSlot() throws {
        let slab = try SecureSlab(slotBytes: 32, slotCount: 1)
        #expect(throws: CryptoError.authenticationFailed) {
            _ = try SecretBytes(count: 32, from: slab) { (buffer) throws(CryptoError) in
                buffer.initializeMemory(as: UInt8.self, repeating: 0x5A)
                throw .authenticationFailed
            }
        }
        #expect(slab.available == 1)
        #expect(slab.slotIsZero(0))
    }

    @Test func anExhaustedSlabFallsBackToItsOwnAllocation() throws {
        let slab = try SecureSlab(slotBytes: 32, slotCount: 2)
        let a = try SecretBytes.random(count: 32, from: slab)
        let b = try SecretBytes.random(count: 32, from: slab)
        #expect(slab.available == 0)
        let c = try SecretBytes.random(count: 32, from: slab)
        #expect(slab.available == 0)
        // Three distinct keys, each readable.
        let distinct = !a.constantTimeEquals(b) && !b.constantTimeEquals(c) && !a.constantTimeEquals(c)
        #expect(distinct)
        _ = consume c
        #expect(slab.available == 0, "the fallback allocation does not give a slot back")
        _ = consume a
        _ = consume b
        #expect(slab.available == 2)
    }

    @Test func aSecretLargerThanASlotGetsItsOwnAllocation() throws {
        let slab = try SecureSlab(slotBytes: 32, slotCount: 1)
        let big = try SecretBytes.random(count: 64, from: slab)
        #expect(big.count == 64)
        #expect(slab.available == 1)
    }

    @Test func unwrappingIntoASlabGivesTheSameKey() throws {
        let slab = try SecureSlab(slotBytes: XChaCha20Poly1305.keyBytes, slotCount: 4)
        let kek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let dek = try SecretBytes.random(count: XChaCha20Poly1305.keyBytes)
        let wrapped = try XChaCha20Poly1305.seal(secret: dek, associatedData: [7], key: kek)
        do {
            let opened = try XChaCha20Poly1305.openSecret(wrapped, associatedData: [7], key: kek, slab: slab)
            let same = opened.constantTimeEquals(dek)
            #expect(same)
            #expect(slab.available == 3)
        }
        #expect(throws: CryptoError.authenticationFailed) {
            try XChaCha20Poly1305.openSecret(wrapped, associatedData: [8], key: kek, slab: slab)
        }
        #expect(slab.available == 4)
        for slot in 0..<4 { #expect(slab.slotIsZero(slot)) }
    }

    /// Many threads taking and dropping slots at once: no slot is ever lent twice (each owner
    /// writes its own pattern and finds it intact), and all come back.
    @Test func concurrentOwnersNeverShareASlot() async throws {
        let slab = try SecureSlab(slotBytes: 32, slotCount: 8)
        let clashes = await withTaskGroup(of: Int.self) { group in
            for worker in 0..<16 {
                group.addTask {
                    var clashes = 0
                    for round in 0..<500 {
                        let pattern = UInt8(truncatingIfNeeded: worker &* 31 &+ round)
                        guard
                            let secret = try? SecretBytes(
                                count: 32, from: slab, fill: { $0.initializeMemory(as: UInt8.self, repeating: pattern) })
                        else { return 1_000_000 }
                        await Task.yield()
                        let intact = secret.withUnsafeBytes { !$0.contains { $0 != pattern } }
                        if !intact { clashes += 1 }
                    }
                    return clashes
                }
            }
            return await group.reduce(0, +)
        }
        #expect(clashes == 0)
        #expect(slab.available == 8)
        for slot in 0..<8 { #expect(slab.slotIsZero(slot)) }
    }
}
