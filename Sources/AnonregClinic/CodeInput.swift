import Foundation
import RegistryCrypto
import RegistryText

/// Patient codes as people type them, or as a scanner reads them from the card's QR symbol.
///
/// Every command that takes a code reads it here: from its argument, or from standard input
/// (which keeps it out of the process list and shell history). The code is checked on this machine
/// before anything is sent (docs/PROTOCOL.md §Patient codes): lower case, spaces, missing or extra
/// dashes and Crockford's look-alikes (O for 0, I and L for 1) are accepted; a wrong check symbol
/// gets "check for a typing mistake" here, at once, and is never sent. anonregd checks again and
/// answers a malformed code exactly like an unknown one.
enum CodeInput {
    /// The code from `argument`, or a line of standard input, in its printed form
    /// (`XXXX-XXXX-XXXX-XXXX-XXXX-XXXX-XXX`).
    static func read(_ argument: String?, language: Language) throws -> String {
        if let argument { return try canonical(argument, language: language) }
        if isatty(0) == 1 {
            print(Catalogue.text("code.prompt", language), terminator: " ")
            fflush(nil)
        }
        guard let line = readLine(strippingNewline: true), !line.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ClinicFailure(exitCode: 2, description: Catalogue.text("code.missing", language))
        }
        return try canonical(line, language: language)
    }

    /// The printed form of a typed or scanned code, or a `ClinicFailure` (exit 2) that says what
    /// is wrong in words, never repeating the input.
    static func canonical(_ text: String, language: Language) throws -> String {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        do {
            return try PatientCode.parse(trimmed).formatted()
        } catch {
            throw ClinicFailure(exitCode: 2, description: message(for: error, input: trimmed, language: language))
        }
    }

    static func message(for error: CryptoError, input: String, language: Language) -> String {
        guard case .invalidPatientCode(let problem) = error else { return Catalogue.text("code.typo", language) }
        switch problem {
        case .checkSymbolMismatch, .outOfRange:
            return Catalogue.text("code.typo", language)
        case .wrongLength:
            let symbols = input.unicodeScalars.filter { $0 != "-" && $0 != " " && $0 != "\t" }.count
            return Catalogue.text("code.length", language, ["count": String(symbols)])
        case .invalidCharacter:
            // A Russian keyboard layout gives Cyrillic letters: say so rather than "a wrong character".
            let cyrillic = input.unicodeScalars.contains { (0x0400...0x04FF).contains($0.value) }
            return Catalogue.text(cyrillic ? "code.cyrillic" : "code.character", language)
        }
    }
}
