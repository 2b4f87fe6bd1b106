// libFuzzer target 2 (issue 8): patient-code parsing and OPRF element decoding
// (RegistryCrypto). Built for fuzzing by scripts/fuzz.sh (`-sanitize=fuzzer,address
// -D ANONREG_LIBFUZZER`); a normal build makes a replayer that runs the files
// named on its command line through the same entry point (docs/ROBUSTNESS.md).
import Foundation
import FuzzDriver
import RegistryCrypto

/// One server key and one client blind for the whole run (derived from fixed bytes).
final class FuzzKeys: Sendable {
    static let shared = FuzzKeys()
    let server: OPRFServerKey
    let blinded: OPRFClient.BlindedInput

    init() {
        do {
            let seed = try SecretBytes(count: OPRF.seedBytes) { $0.initializeMemory(as: UInt8.self, repeating: 7) }
            server = try OPRFServerKey(seed: seed, info: Array("fuzz".utf8))
            blinded = try OPRFClient.blind(input: Array("fuzz input".utf8))
        } catch {
            fatalError("fuzz key setup failed: \(error)")
        }
    }
}

/// Byte 0 chooses what the rest is fed to. Properties: no crash; a parsed code prints and
/// re-parses to the same bytes; hex round-trips; BlindEvaluate accepts exactly the elements
/// DeserializeElement accepts and answers a valid element; Finalize refuses invalid elements.
func fuzzOne(_ data: [UInt8]) {
    guard let selector = data.first else { return }
    let rest = Array(data.dropFirst())
    switch selector % 4 {
    case 0:
        let text = String(decoding: rest, as: UTF8.self)
        guard let code = try? PatientCode.parse(text) else { return }
        let printed = code.formatted()
        precondition(printed.utf8.count == 33, "formatted code has \(printed.utf8.count) characters")
        guard let again = try? PatientCode.parse(printed) else { fatalError("a printed code does not parse") }
        let same = code.bytes.withUnsafeBytes { a in again.bytes.withUnsafeBytes { b in a.elementsEqual(b) } }
        precondition(same, "code round trip changed the bytes")
        // Lower case and extra separators are the same code (Crockford: case-insensitive).
        guard let lowered = try? PatientCode.parse(" " + printed.lowercased().replacingOccurrences(of: "-", with: " - ")) else {
            fatalError("a lower-cased printed code does not parse")
        }
        precondition(lowered.bytes.withUnsafeBytes { a in code.bytes.withUnsafeBytes { b in a.elementsEqual(b) } })
    case 1:
        let text = String(decoding: rest, as: UTF8.self)
        guard let bytes = try? Hex.decode(text) else { return }
        precondition((try? Hex.decode(Hex.encode(bytes))) == bytes, "hex round trip")
        _ = try? Hex.decode(text, length: 32, what: "element")
        checkElement(bytes)
    case 2:
        checkElement(Array(rest.prefix(64)))
    default:
        let keys = FuzzKeys.shared
        let element = Array(rest.prefix(32))
        let accepted = (try? Ristretto255.validateElement(element)) != nil
        let output = try? OPRFClient.finalize(input: Array("fuzz input".utf8), blind: keys.blinded.blind, evaluatedElement: element)
        precondition((output != nil) == accepted, "Finalize accepted an element DeserializeElement refuses, or the reverse")
        if let output { precondition(output.count == 64, "OPRF output is 64 bytes") }
    }
}

/// BlindEvaluate agrees with DeserializeElement, and what it answers is a valid element.
func checkElement(_ element: [UInt8]) {
    let accepted = (try? Ristretto255.validateElement(element)) != nil
    do {
        let evaluated = try FuzzKeys.shared.server.blindEvaluate(blindedElement: element)
        precondition(accepted, "BlindEvaluate took an element DeserializeElement refuses")
        precondition((try? Ristretto255.validateElement(evaluated)) != nil, "BlindEvaluate answered an invalid element")
    } catch {
        precondition(!accepted, "BlindEvaluate refused a valid element: \(error)")
        precondition(error == .invalidElement || error == .identityElement, "unexpected error \(error)")
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzCryptoEntry(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzOne(FuzzDriver.bytes(start, count))
    return 0
}

@main
enum FuzzCryptoMain {
    static func main() { FuzzDriver.main(entry: fuzzCryptoEntry, replay: fuzzOne) }
}
