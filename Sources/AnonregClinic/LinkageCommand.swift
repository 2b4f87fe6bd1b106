import ArgumentParser
import Foundation
import RegistryCrypto
import RegistryProtocol
import RegistryText

private struct ElementBody: Encodable { var blindedElement: String }
private struct ElementsBody: Encodable { var blindedElements: [String] }

/// `anonreg linkage`: the clinic's half of RFC 9497 (Blind, Finalize) around the daemon's
/// `POST /v1/oprf/evaluate`, over identities built with the linkage input profile.
public struct LinkageCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "linkage",
        abstract: "Compute linkage values for de-duplicated statistics: identities are blinded here, so the registry never sees them.",
        discussion: """
            An identity is "family|given|birth date" or "family|given|patronymic|birth date", in \
            Cyrillic or Latin letters, with the birth date as YYYY-MM-DD or DD.MM.YYYY. It is \
            folded with the linkage input profile anonreg-linkage-v1 (docs/PROTOCOL.md §Linkage), \
            so that Cyrillic and Latin spellings of a name (Petr, Pyotr), or dates written either \
            way, give one value; the patronymic is left out. The identity is hashed to \
            ristretto255 and blinded on this \
            machine; anonregd evaluates the blinded element with its OPRF key (RFC 9497), and the \
            result is unblinded and finalised here. Pass a printed value (128 hex digits) as \
            --linkage to `anonreg enrol`.

            Without --fields, --batch or --identity, one identity is read from standard input, \
            which keeps it out of the process list. --batch reads one identity per line and prints \
            one value per line in the same order, evaluated 100 to a request; a line that does not \
            fit the profile stops the run before anything is sent (exit 2). --identity TEXT uses \
            a free-form string instead of the profile (NFKC, lower case, white space folded): its \
            values never match the profile's.
            """)
    @OptionGroup var connection: ConnectionOptions
    @Option(help: "One identity, family|given|[patronymic|]birth date. Arguments are visible in the process list: prefer standard input.")
    var fields: String?
    @Flag(help: "Read identities from standard input, one per line; print one linkage value per line.")
    var batch = false
    @Option(help: "A free-form identity string instead of the profile (its values never match the profile's).")
    var identity: String?
    @Option(help: "Elements per request with --batch (1 to 100).")
    var batchSize = OPRFEvaluateRequest.maxBatch
    @Flag(help: "Print the profile's identity strings instead of linkage values; contacts no daemon.")
    var identityOnly = false
    public init() {}

    public func validate() throws {
        guard [fields != nil, batch, identity != nil].filter({ $0 }).count <= 1 else {
            throw ValidationError("give at most one of --fields, --batch and --identity")
        }
        guard (1...OPRFEvaluateRequest.maxBatch).contains(batchSize) else { throw ValidationError("--batch-size must be 1 to 100") }
    }

    public func run() throws {
        let inputs = try identities()
        if identityOnly {
            print(connection.json ? jsonObject("identities", inputs) : inputs.joined(separator: "\n"))
            return
        }
        let client = ClinicClient(options: connection)
        guard batch else {
            let value = try Self.evaluate(inputs, client: client)[0]
            print(connection.json ? "{\"linkage\":\"\(value)\"}" : value)
            return
        }
        // Without --json each request's values are printed as they come, so that after a
        // refusal (say 429 rate_limited) the lines already done are out and the run can resume.
        var values: [String] = []
        for start in stride(from: 0, to: inputs.count, by: batchSize) {
            let end = min(start + batchSize, inputs.count)
            let chunk: [String]
            do { chunk = try Self.evaluate(Array(inputs[start..<end]), client: client) } catch var failure as ClinicFailure {
                let language = connection.language
                failure.description = Catalogue.text(
                    "linkage.lines", language,
                    [
                        "first": String(start + 1), "last": String(end), "problem": failure.description,
                    ])
                if start > 0 {
                    failure.description +=
                        connection.json
                        ? Catalogue.text("linkage.nothingPrinted", language)
                        : Catalogue.text("linkage.printedBefore", language, ["done": String(start)])
                }
                throw failure
            }
            if connection.json {
                values += chunk
            } else {
                print(chunk.joined(separator: "\n"))
                fflush(nil)
            }
        }
        if connection.json { print(jsonObject("linkages", values)) }
    }

    /// The OPRF inputs: profile identity strings (or the one free-form string).
    func identities() throws -> [String] {
        let language = connection.language
        if let identity {
            let normalised = Linkage.normalise(identity)
            guard !normalised.isEmpty else { throw ClinicFailure(exitCode: 2, description: Catalogue.text("linkage.empty", language)) }
            return [normalised]
        }
        if batch {
            var lines: [String] = []
            while let line = readLine(strippingNewline: true) { lines.append(line) }
            guard !lines.isEmpty else { throw ClinicFailure(exitCode: 2, description: Catalogue.text("linkage.noInput", language)) }
            return try lines.enumerated().map { number, line in
                do { return try LinkageProfile.identity(line: line) } catch let problem as LinkageProfile.Problem {
                    throw ClinicFailure(
                        exitCode: 2,
                        description: Catalogue.text(
                            "linkage.line", language,
                            [
                                "line": String(number + 1), "problem": problem.text(language),
                            ]))
                }
            }
        }
        guard let line = fields ?? readLine(strippingNewline: true), !line.isEmpty else {
            throw ClinicFailure(exitCode: 2, description: Catalogue.text("linkage.noIdentity", language))
        }
        do { return [try LinkageProfile.identity(line: line)] } catch {
            throw ClinicFailure(exitCode: 2, description: error.text(language))
        }
    }

    /// Blinds every input, asks the daemon to evaluate them (one request: the single form for
    /// one input, a batch otherwise) and finalises. Blinds stay in secure memory throughout.
    static func evaluate(_ inputs: [String], client: ClinicClient) throws -> [String] {
        let blinded = try inputs.map { input in
            do { return BlindedBox(try OPRFClient.blind(input: Array(input.utf8))) } catch {
                throw ClinicFailure(exitCode: 2, description: "an identity cannot be blinded (\(error))")
            }
        }
        let evaluated: [String]
        if blinded.count == 1 {
            let (reply, _) = try client.call(
                "POST", "/v1/oprf/evaluate",
                body: ElementBody(blindedElement: Hex.encode(blinded[0].value.blindedElement)), as: OPRFEvaluateResponse.self)
            evaluated = [reply.evaluationElement]
        } else {
            let body = ElementsBody(blindedElements: blinded.map { Hex.encode($0.value.blindedElement) })
            let (reply, _) = try client.call("POST", "/v1/oprf/evaluate", body: body, as: OPRFBatchEvaluateResponse.self)
            evaluated = reply.evaluationElements
        }
        guard evaluated.count == inputs.count else {
            throw ClinicFailure(exitCode: 1, description: "anonregd answered \(evaluated.count) evaluations for \(inputs.count) elements")
        }
        return try zip(inputs, zip(blinded, evaluated)).map { input, pair in
            do {
                return Hex.encode(
                    try OPRFClient.finalize(input: Array(input.utf8), blind: pair.0.value.blind, evaluatedElement: try Hex.decode(pair.1)))
            } catch {
                throw ClinicFailure(exitCode: 1, description: "anonregd's evaluation is not a valid element (\(error))")
            }
        }
    }

    private func jsonObject(_ key: String, _ values: [String]) -> String {
        let data = (try? JSONEncoder.sortedWithoutEscapingSlashes.encode([key: values])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// Holds one non-copyable blinded input so that a batch can keep its blinds in an array.
private final class BlindedBox {
    let value: OPRFClient.BlindedInput
    init(_ value: consuming OPRFClient.BlindedInput) { self.value = value }
}

extension JSONEncoder {
    fileprivate static var sortedWithoutEscapingSlashes: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }
}

/// The free-form normalisation of `anonreg linkage --identity` (docs/PROTOCOL.md §Linkage,
/// "Free-form identities"): Unicode NFKC, lower case, runs of white space as one space, trimmed.
public enum Linkage {
    public static func normalise(_ identity: String) -> String {
        let nfkc = identity.precomposedStringWithCompatibilityMapping
        let lowered = nfkc.lowercased(with: Locale(identifier: "en_US_POSIX"))
        return lowered.split(whereSeparator: { $0.isWhitespace }).joined(separator: " ")
    }
}
