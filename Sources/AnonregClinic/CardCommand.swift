import ArgumentParser
import Foundation
import PatientCard
import RegistryText

/// `anonreg card`: the patient's printable card from an enrolment or re-issue answer
/// (docs/OPERATIONS.md §Patient cards).
public struct CardCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "card",
        abstract: "Make the patient's printable card (SVG or PDF) from an enrolment or re-issue answer on standard input.",
        discussion: """
            Reads the JSON answer of `anonreg enrol --json` or `anonreg reissue-code --json` (or just a \
            patient code) on standard input, and writes a card with the code in large type, a QR code \
            that holds the code and nothing else, and one sentence saying what the code is for and \
            that the registry keeps no name. The card shows no clinic, date or category. PDF needs \
            rsvg-convert (Debian package librsvg2-bin). The file holds the patient code: it is \
            created readable by its owner only, and should be deleted once the card is printed.

            Example: anonreg enrol --category dependence --consent-form F-1 --json | anonreg card -o card.pdf
            """)

    @Option(
        name: [.short, .long], help: "The card file: .svg or .pdf; `-` writes to standard output. An existing file is never overwritten.")
    var output: String
    @Option(help: "svg or pdf (default: from the file name; svg for standard output).") var format: String?
    @Option(help: "wallet (ID-1 card, 85.6 × 54 mm) or sticker (70 × 37 mm label).") var size: String = "wallet"
    @OptionGroup var languageOptions: LanguageOptions
    public init() {}

    public func validate() throws {
        guard CardSize(rawValue: size) != nil else { throw ValidationError("--size must be wallet or sticker") }
        if let format, CardFormat(rawValue: format) == nil { throw ValidationError("--format must be svg or pdf") }
    }

    public func run() throws {
        let language = languageOptions.language
        let format = try format.flatMap(CardFormat.init(rawValue:)) ?? CardFormat.from(path: output, language: language)
        let file = try CardFile.create(output, format: format, language: language)
        do {
            let code = try CodeInput.canonical(try Self.codeFromInput(language: language), language: language)
            try file.write(code: code, size: CardSize(rawValue: size)!, language: language)
        } catch {
            file.discard()
            throw error
        }
        if output != "-" {
            FileHandle.standardError.write(Data((Catalogue.text("card.written", language, ["file": output]) + "\n").utf8))
        }
    }

    /// The code in standard input: the `code` of a JSON answer, or the input itself.
    static func codeFromInput(language: Language) throws -> String {
        if isatty(0) == 1 {
            print(Catalogue.text("code.prompt", language), terminator: " ")
            fflush(nil)
        }
        let data = FileHandle.standardInput.readData(ofLength: 65536)
        let text = String(decoding: data, as: UTF8.self)
        if text.trimmingCharacters(in: .whitespacesAndNewlines).hasPrefix("{") {
            guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let code = object["code"] as? String
            else {
                throw ClinicFailure(exitCode: 2, description: Catalogue.text("card.noCode", language))
            }
            return code
        }
        guard !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw ClinicFailure(exitCode: 2, description: Catalogue.text("code.missing", language))
        }
        return text
    }
}

/// `--card FILE` and `--card-size` of `anonreg enrol` and `anonreg reissue-code`.
public struct CardOptions: ParsableArguments {
    @Option(
        help:
            "Also write the patient's card to this file, .svg or .pdf (PDF needs rsvg-convert). It holds the code: delete it once printed.")
    var card: String?
    @Option(help: "The card's size: wallet (85.6 × 54 mm) or sticker (70 × 37 mm).") var cardSize: String = "wallet"
    public init() {}

    public func validate() throws {
        guard CardSize(rawValue: cardSize) != nil else { throw ValidationError("--card-size must be wallet or sticker") }
        if card == "-" { throw ValidationError("--card needs a file name (`anonreg card -o -` writes a card to standard output)") }
    }

    /// Opens the card file before the daemon is asked, so that a code is never drawn for a card
    /// that cannot be written (an existing file, a missing directory, no rsvg-convert for PDF).
    func prepare(language: Language) throws -> CardFile? {
        guard let card else { return nil }
        return try CardFile.create(card, format: try CardFormat.from(path: card, language: language), language: language)
    }

    /// Writes the card for `code` into the prepared file. The code was already printed, so a
    /// failure here loses nothing: the message says so.
    func finish(_ file: CardFile?, code: String, language: Language) throws {
        guard let file else { return }
        do { try file.write(code: code, size: CardSize(rawValue: cardSize)!, language: language) } catch {
            file.discard()
            throw ClinicFailure(exitCode: 1, description: Catalogue.text("card.failedAfterCode", language, ["reason": "\(error)"]))
        }
    }
}

enum CardFormat: String {
    case svg, pdf

    static func from(path: String, language: Language) throws -> CardFormat {
        if path == "-" { return .svg }
        switch URL(fileURLWithPath: path).pathExtension.lowercased() {
        case "svg": return .svg
        case "pdf": return .pdf
        default: throw ClinicFailure(exitCode: 2, description: Catalogue.text("card.extension", language))
        }
    }
}

/// A card file, created new and readable by its owner only (it holds the patient code).
final class CardFile {
    let path: String
    let format: CardFormat
    let fd: Int32
    let language: Language
    private var closed = false

    private init(path: String, format: CardFormat, fd: Int32, language: Language) {
        self.path = path
        self.format = format
        self.fd = fd
        self.language = language
    }

    static func create(_ path: String, format: CardFormat, language: Language) throws -> CardFile {
        if format == .pdf, CardPDF.converter() == nil {
            throw ClinicFailure(exitCode: 1, description: Catalogue.text("card.noConverter", language))
        }
        if path == "-" { return CardFile(path: path, format: format, fd: 1, language: language) }
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else {
            let code = errno
            let key = code == EEXIST ? "card.exists" : "card.cannotCreate"
            throw ClinicFailure(
                exitCode: 1, description: Catalogue.text(key, language, ["file": path, "reason": String(cString: strerror(code))]))
        }
        return CardFile(path: path, format: format, fd: fd, language: language)
    }

    func write(code: String, size: CardSize, language: Language) throws {
        let svg = try PatientCard.svg(code: code, size: size, language: language)
        let bytes = format == .pdf ? try CardPDF.pdf(fromSVG: svg) : Data(svg.utf8)
        try bytes.withUnsafeBytes { (buffer: UnsafeRawBufferPointer) in
            var done = 0
            while done < buffer.count {
                let n = Glibc.write(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw ClinicFailure(
                        exitCode: 1,
                        description: Catalogue.text(
                            "card.cannotCreate", language,
                            [
                                "file": path, "reason": String(cString: strerror(errno)),
                            ]))
                }
                done += n
            }
        }
        if fd != 1 {
            let synced = fsync(fd) == 0
            closed = true
            guard close(fd) == 0, synced else {
                throw ClinicFailure(
                    exitCode: 1,
                    description: Catalogue.text(
                        "card.cannotCreate", language,
                        [
                            "file": path, "reason": String(cString: strerror(errno)),
                        ]))
            }
        }
    }

    /// Removes a card file this run created (after a failure).
    func discard() {
        guard fd != 1 else { return }
        if !closed { close(fd) }
        closed = true
        unlink(path)
    }
}
