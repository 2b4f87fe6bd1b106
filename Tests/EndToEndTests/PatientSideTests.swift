import AnonregTestSupport
import Foundation
import Testing

/// The patient's side through the real daemon and CLI (issue 19): cards from enrolment and
/// re-issue, codes typed every way a person or a scanner types them, the typing-mistake message,
/// the wire's single answer for malformed and unknown codes, and Russian.
@Suite(.serialized) struct PatientSideTests {
    static let alphabet = Array("0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U")

    /// A well-formed code (docs/CRYPTO.md §Patient code) that no subject holds.
    static func randomWellFormedCode() -> String {
        var values = [Int.random(in: 0..<8)] + (1..<26).map { _ in Int.random(in: 0..<32) }
        let check = values.reduce(0) { ($0 * 32 + $1) % 37 }
        values.append(check)
        return format(values.map { alphabet[$0] })
    }

    static func format(_ symbols: [Character]) -> String {
        stride(from: 0, to: symbols.count, by: 4).map { String(symbols[$0..<min($0 + 4, symbols.count)]) }.joined(separator: "-")
    }

    /// `code` with one data symbol changed: its check symbol no longer matches.
    static func typo(of code: String) -> String {
        var symbols = Array(code.filter { $0 != "-" })
        let i = 5
        let value = alphabet.firstIndex(of: symbols[i])!
        symbols[i] = alphabet[(value + 1) % 32]
        return format(symbols)
    }

    /// The QR symbol's content, as zbarimg reads it from a card file rendered at 300 dpi.
    static func scanCard(_ path: String, tmp: TemporaryDirectory) throws -> String {
        let png = tmp.sub("scan-\(UUID().uuidString)")
        if path.hasSuffix(".pdf") {
            #expect(try Binaries.runExecutable("/usr/bin/pdftoppm", ["-r", "300", "-png", "-singlefile", path, png]).status == 0)
        } else {
            #expect(
                try Binaries.runExecutable("/usr/bin/rsvg-convert", ["-d", "300", "-p", "300", "-b", "white", "-o", png + ".png", path])
                    .status == 0)
        }
        return try Binaries.runExecutable("/usr/bin/zbarimg", ["--quiet", "--raw", png + ".png"]).stdout
    }

    func enrolJSON(_ d: DaemonHarness, _ extra: [String] = []) throws -> (handle: String, code: String) {
        let result = try d.anonreg(
            ["enrol", "--category", "dependence", "--enrolled-on", "2026-01-10", "--consent-form", "F-1", "--json"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try #require((try? JSONSerialization.jsonObject(with: Data(result.stdout.utf8))) as? [String: Any])
        return (try #require(json["case"] as? String), try #require(json["code"] as? String))
    }

    // MARK: - Cards

    @Test func enrolAndReissueWriteCardsThatScanToTheCode() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let wallet = d.tmp.sub("wallet.pdf")
        let (handle, code) = try enrolJSON(d, ["--card", wallet, "--lang", "ru"])
        #expect(try Self.scanCard(wallet, tmp: d.tmp) == code + "\n")
        #expect(d.tmp.mode(of: wallet) == 0o600, "the card holds the code: owner only")

        let sticker = d.tmp.sub("sticker.svg")
        let reissue = try d.anonreg(["reissue-code", handle, "--card", sticker, "--card-size", "sticker"])
        #expect(reissue.status == 0, "\(reissue.stderr)")
        let newCode = try #require(
            reissue.stdout.split(separator: "\n").first { $0.hasPrefix("new patient code") }?
                .split(separator: " ").last.map(String.init))
        #expect(newCode != code)
        #expect(try Self.scanCard(sticker, tmp: d.tmp) == newCode + "\n")
        #expect(reissue.stdout.contains("The old code no longer works"))
        // The old card's code stops working.
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").errorCode == "code_not_found")

        // `anonreg card` from a --json answer on standard input, and from a typed code.
        let piped = d.tmp.sub("piped.svg")
        let card = try d.anonregWith(["card", "-o", piped, "--size", "sticker", "--lang", "ru"], input: "{\"code\":\"\(newCode)\"}\n")
        #expect(card.status == 0, "\(card.stderr)")
        #expect(card.stderr.contains("Карточка записана"))
        #expect(try Self.scanCard(piped, tmp: d.tmp) == newCode + "\n")
        let typed = d.tmp.sub("typed.pdf")
        #expect(
            try d.anonregWith(["card", "-o", typed], input: newCode.lowercased().replacingOccurrences(of: "-", with: " ") + "\n").status
                == 0)
        #expect(try Self.scanCard(typed, tmp: d.tmp) == newCode + "\n")
    }

    /// A card that cannot be written is refused before the daemon draws a code: nothing is
    /// enrolled, and no file is overwritten.
    @Test func anUnwritableCardIsRefusedBeforeEnrolment() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let before = try d.registryDump()
        let existing = d.tmp.sub("existing.pdf")
        try "keep me".write(toFile: existing, atomically: true, encoding: .utf8)
        for (card, message) in [
            (existing, "already exists"), (d.tmp.sub("card.png"), "must end in .svg or .pdf"),
            (d.tmp.sub("no/such/dir/card.svg"), "Cannot write the card"),
        ] {
            let result = try d.anonreg(["enrol", "--category", "dependence", "--consent-form", "F-1", "--card", card])
            #expect(result.status != 0)
            #expect(result.stderr.contains(message), "\(result.stderr)")
        }
        #expect(try String(contentsOfFile: existing, encoding: .utf8) == "keep me")
        #expect(try d.registryDump() == before, "a subject was enrolled although its card could not be written")
        // A refused enrolment leaves no empty card behind.
        let refused = d.tmp.sub("refused.svg")
        let result = try d.anonreg(["enrol", "--category", "no-such-category", "--consent-form", "F-1", "--card", refused])
        #expect(result.status == 3)
        #expect(!FileManager.default.fileExists(atPath: refused))
        // `card` refuses input without a code, and never writes a file then.
        let empty = d.tmp.sub("empty.svg")
        #expect(try d.anonregWith(["card", "-o", empty], input: "{\"case\":\"case_1\"}").status == 2)
        #expect(!FileManager.default.fileExists(atPath: empty))
    }

    // MARK: - Code input

    /// Every accepted way of writing a real code reaches the same case: the QR's content, lower
    /// case, spaces, no dashes, O for 0 and I or L for 1, with and without an argument.
    @Test func everyVariantOfACodeReachesTheSameCase() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        var enrolled: (handle: String, code: String)? = nil
        for _ in 0..<40 {
            let candidate = try enrolJSON(d)
            if candidate.code.contains("0") && candidate.code.contains("1") {
                enrolled = candidate
                break
            }
        }
        let (handle, code) = try #require(enrolled, "no code with both 0 and 1 in 40 enrolments")
        let variants = [
            code,
            code.lowercased(),
            code.replacingOccurrences(of: "-", with: " "),
            code.replacingOccurrences(of: "-", with: ""),
            code.replacingOccurrences(of: "-", with: "").lowercased(),
            "  " + code.replacingOccurrences(of: "-", with: " - ") + "  ",
            code.replacingOccurrences(of: "0", with: "O").replacingOccurrences(of: "1", with: "I"),
            code.replacingOccurrences(of: "0", with: "o").replacingOccurrences(of: "1", with: "l"),
            code.replacingOccurrences(of: "1", with: "L"),
        ]
        for variant in variants {
            let argument = try d.anonreg(["link", variant, "--json"])
            #expect(argument.status == 0, "\(variant): \(argument.stderr)")
            #expect(argument.stdout.contains(handle), "\(variant) reached another case: \(argument.stdout)")
            // Standard input, as a keyboard-wedge scanner types it (with a carriage return).
            let typed = try d.anonregWith(["self", "--json"], input: variant + "\r\n")
            #expect(typed.status == 0, "\(variant) on standard input: \(typed.stderr)")
            #expect(typed.stdout.contains("\"clinics\":[\"local\"]"))
        }
        // withdraw --code takes the variants too: the last one erases the subject.
        let withdraw = try d.anonreg(["withdraw", "--code", variants.last!])
        #expect(withdraw.status == 0, "\(withdraw.stderr)")
        #expect(try d.request("GET", "/v1/cases/\(handle)").errorCode == "case_not_found")
    }

    /// A checksum typo is caught by the CLI with a "check for a typing mistake" message, before
    /// anything reaches the daemon (so nothing is audited); other malformed codes get their own
    /// plain words, never repeating the code.
    @Test func aTypoGetsTheTypingMistakeMessageFromTheCLI() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (_, code) = try enrolJSON(d)
        let typo = Self.typo(of: code)
        let auditBefore = try d.auditEntryCount()
        for command in [["self", typo], ["link", typo], ["withdraw", "--code", typo]] {
            let en = try d.anonreg(command)
            #expect(en.status == 2)
            #expect(en.stderr.contains("This code has a typing mistake: check every letter and digit against the card."), "\(en.stderr)")
            #expect(!en.stderr.contains(typo) && !en.stderr.contains(code))
            let ru = try d.anonreg(command + ["--lang", "ru"])
            #expect(ru.stderr.contains("В коде опечатка. Сверьте с карточкой каждую букву и цифру."), "\(ru.stderr)")
        }
        let short = try d.anonreg(["self", String(code.dropLast(2))])
        #expect(short.stderr.contains("A patient code has 27 letters and digits; 25 were given"), "\(short.stderr)")
        // A Russian keyboard layout types Cyrillic look-alikes: say so.
        let cyrillic = try d.anonregWith(
            ["self", "--lang", "ru"],
            input: code.replacingOccurrences(of: "A", with: "А").replacingOccurrences(of: "C", with: "С")
                .replacingOccurrences(of: "E", with: "Е").replacingOccurrences(of: "K", with: "К").replacingOccurrences(of: "M", with: "М")
                .replacingOccurrences(of: "H", with: "Н").replacingOccurrences(of: "P", with: "Р").replacingOccurrences(of: "T", with: "Т")
                .replacingOccurrences(of: "X", with: "Х").replacingOccurrences(of: "B", with: "В").replacingOccurrences(of: "0", with: "О")
                + "\n")
        #expect(cyrillic.status == 2)
        #expect(cyrillic.stderr.contains("В коде есть русские буквы"), "\(cyrillic.stderr)")
        #expect(try d.auditEntryCount() == auditBefore, "a malformed code reached the daemon")
        // A well-formed code that nobody holds does reach it, and is told apart only by the daemon.
        let unknown = try d.anonreg(["self", Self.randomWellFormedCode()])
        #expect(unknown.status == 1)
        #expect(
            unknown.stderr == "anonreg: no subject holds that code; check it for typos [code_not_found, HTTP 404]\n", "\(unknown.stderr)")
        let unknownRU = try d.anonreg(["self", Self.randomWellFormedCode(), "--lang", "ru"])
        #expect(
            unknownRU.stderr
                == "anonreg: Такого кода пациента нет. Проверьте, нет ли опечатки. Потерянный код может заново выдать клиника, "
                + "которая ведёт случай [code_not_found, HTTP 404]\n", "\(unknownRU.stderr)")
        let category = try d.anonreg(["enrol", "--category", "gambling", "--consent-form", "F-1", "--lang", "ru"])
        #expect(category.status == 3)
        #expect(
            category.stderr.hasPrefix("anonreg: Неизвестная категория. Подробности (anonregd): category must be one of: "),
            "\(category.stderr)")
    }

    /// On the wire, a malformed code (bad check symbol, wrong length, stray characters,
    /// transposed symbols) answers byte for byte like a well-formed code nobody holds: status,
    /// headers but Date, and body, in every language.
    @Test func malformedAndUnknownCodesAnswerByteIdentically() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (_, code) = try enrolJSON(d)
        var transposed = Array(code)
        transposed.swapAt(0, 1)
        if transposed == Array(code) { transposed.swapAt(2, 3) }
        let malformed = [
            Self.typo(of: code), String(code.dropLast()), code + "X", "ЖЖЖЖ-" + code.dropFirst(5), String(transposed),
            "", "not a code", "8" + code.dropFirst(),
        ]
        let unknown = [Self.randomWellFormedCode(), Self.randomWellFormedCode(), "0000-0000-0000-0000-0000-0000-000"]
        func raw(_ path: String, _ code: String, _ language: String?) throws -> String {
            let body = "{\"code\":\"\(code)\"}"
            let reply = try d.request(
                "POST", path, body: body, extraCurl: ["-i"] + (language.map { ["-H", "Accept-Language: \($0)"] } ?? []))
            return "\(reply.status)\n"
                + reply.body.split(separator: "\r\n", omittingEmptySubsequences: false)
                .filter { !$0.lowercased().hasPrefix("date:") }.joined(separator: "\r\n")
        }
        for path in ["/v1/self", "/v1/cases", "/v1/withdraw"] {
            let reference = try raw(path, unknown[0], nil)
            #expect(reference.hasPrefix("404\n"))
            #expect(reference.contains("{\"error\":{\"code\":\"code_not_found\""))
            for language in [nil, "ru", "en;q=0.1, ru"] as [String?] {
                for candidate in malformed + unknown {
                    #expect(try raw(path, candidate, language) == reference, "\(path) \(candidate.debugDescription) \(language ?? "-")")
                }
            }
        }
        // The real code still works: nothing above touched it.
        #expect(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}").status == 200)
    }

    // MARK: - Languages

    /// Accept-Language changes the plain-words fields only: every machine field is the same, and
    /// the answer says its language.
    @Test func acceptLanguageChangesOnlyThePlainWords() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (handle, code) = try enrolJSON(d)
        #expect(
            try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}").status == 201)
        func json(_ reply: DaemonHarness.Reply) -> [String: Any] { reply.json ?? [:] }
        let en = try d.request("GET", "/v1/cases/\(handle)")
        let ru = try d.request("GET", "/v1/cases/\(handle)", extraCurl: ["-H", "Accept-Language: ru-RU,ru;q=0.9,en;q=0.5"])
        var enMonitoring = try #require(json(en)["monitoring"] as? [String: Any])
        var ruMonitoring = try #require(json(ru)["monitoring"] as? [String: Any])
        let enReason = try #require(enMonitoring.removeValue(forKey: "reason") as? String)
        let ruReason = try #require(ruMonitoring.removeValue(forKey: "reason") as? String)
        #expect(NSDictionary(dictionary: enMonitoring).isEqual(to: ruMonitoring), "machine fields differ: \(enMonitoring) \(ruMonitoring)")
        #expect(enReason.hasPrefix("remission since 2026-02-01; 1095 days required; earliest end 2029-01-31"), "\(enReason)")
        #expect(
            ruReason.hasPrefix("ремиссия с 1 февраля 2026; нужно 1095 дней; наблюдение может закончиться не раньше 31 января 2029"),
            "\(ruReason)")
        let headers = try d.request("GET", "/v1/cases/\(handle)", extraCurl: ["-i", "-H", "Accept-Language: ru"]).body.lowercased()
        #expect(headers.contains("content-language: ru"))
        #expect(headers.contains("vary: accept-language"))

        // The self view: summary and access log in Russian; the rest the same.
        let selfEN = json(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}"))
        let selfRU = json(try d.request("POST", "/v1/self", body: "{\"code\":\"\(code)\"}", extraCurl: ["-H", "Accept-Language: ru"]))
        let summary = try #require(selfRU["summary"] as? [String])
        #expect(
            summary.first == "Вы под наблюдением с 10 января 2026, категория «dependence». Наблюдение начала клиника local.", "\(summary)")
        #expect(summary.contains("Осмотр 1 февраля 2026 в клинике local: ремиссия."))
        let log = try #require(selfRU["accessLog"] as? [[String: Any]])
        #expect(log.contains { ($0["text"] as? String)?.contains("клиника local: запись осмотра.") == true }, "\(log)")
        // The same entries (plus the English self-access just before).
        #expect(
            log.dropLast().map { $0["action"] as? String } == (selfEN["accessLog"] as? [[String: Any]])?.map { $0["action"] as? String })
        for key in ["checkups", "clinics", "consent"] {
            #expect(NSArray(array: [selfEN[key] as Any]).isEqual(to: [selfRU[key] as Any]), "\(key) differs")
        }
        // Errors stay as they are.
        let missingEN = try d.request("GET", "/v1/cases/case_00000000000000000000000000000000")
        let missingRU = try d.request("GET", "/v1/cases/case_00000000000000000000000000000000", extraCurl: ["-H", "Accept-Language: ru"])
        #expect(missingEN.status == missingRU.status && missingEN.body == missingRU.body)
    }

    /// The CLI speaks Russian with --lang ru or a Russian locale, and English otherwise; the
    /// daemon's reason comes in the same language.
    @Test func theCLISpeaksTheLanguageAskedFor() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (handle, _) = try enrolJSON(d)
        let russian = try d.anonreg(["status", handle, "--lang", "ru"])
        #expect(russian.status == 0)
        #expect(russian.stdout.contains("состояние"), "\(russian.stdout)")
        #expect(russian.stdout.contains("наблюдение начато 10 января 2026; осмотров ещё не было"), "\(russian.stdout)")
        let locale = try d.anonregWith(["status", handle], input: nil, environment: ["LANG": "ru_RU.UTF-8"])
        #expect(locale.stdout == russian.stdout)
        let overridden = try d.anonregWith(["status", handle], input: nil, environment: ["LANG": "ru_RU.UTF-8", "LC_ALL": "C"])
        #expect(overridden.stdout.contains("enrolled on 2026-01-10; no check-up yet"), "\(overridden.stdout)")
        let due = try d.anonreg(["due", "--before", "2026-01-11", "--lang", "ru"])
        #expect(due.stdout == "Нет случаев, которым нужен осмотр до 11 января 2026.\n", "\(due.stdout)")
        #expect(
            try d.request("POST", "/v1/cases/\(handle)/checkups", body: "{\"on\":\"2026-02-01\",\"outcome\":\"remission\"}").status == 201)
        let checkups = try d.anonreg(["checkups", handle, "--lang", "ru"])
        #expect(checkups.stdout.hasPrefix("ДАТА            ИТОГ      КЛИНИКА  ИСПРАВЛЕНИЕ"), "\(checkups.stdout)")
        #expect(checkups.stdout.contains("1 февраля 2026  ремиссия  local    -"), "\(checkups.stdout)")
        let episode = try d.anonreg(["anonymous-episode", "--category", "dependence", "--on", "2026-01-05", "--lang", "ru"])
        #expect(
            episode.stdout
                == "Учтён один анонимный случай лечения, категория «dependence», 5 января 2026. О человеке ничего не сохранено.\n")
        let bad = try d.anonreg(["status", handle, "--lang", "de"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--lang must be ru or en"))
    }

    /// Clinic staff type a person's details for `anonreg linkage` and dates for check-ups: what
    /// is wrong with them is said in Russian too, with the right plural, and the problem's code
    /// stays as it is. Nothing is sent for a refused line.
    @Test func inputMistakesAreSaidInRussian() throws {
        let d = try DaemonHarness()
        try d.start()
        defer { d.stop() }
        let (handle, _) = try enrolJSON(d)
        let auditBefore = try d.auditEntryCount()
        let cases: [([String], String?, String)] = [
            (
                ["linkage", "--fields", "Иванов|Пётр|31.02.1990"], nil,
                "anonreg: дата рождения должна быть настоящей датой в виде ГГГГ-ММ-ДД или ДД.ММ.ГГГГ [invalid_date]\n"
            ),
            (["linkage", "--fields", "Иванов|31.01.1990"], nil, "(введено 2 поля) [field_count]"),
            (["linkage", "--fields", "Иванов"], nil, "(введено 1 поле) [field_count]"),
            (["linkage", "--fields", "a|b|c|d|e"], nil, "(введено 5 полей) [field_count]"),
            (["linkage", "--fields", "Ivanov|Ђорђе|1990-01-31"], nil, "anonreg: в имени есть недопустимый знак."),
            (["linkage", "--fields", "'|Пётр|1990-01-31"], nil, "anonreg: в фамилии нет ни одной буквы [empty_name]\n"),
            (["linkage", "--batch"], "Иванов|Пётр|1990-01-31\nПетров|1990-01-31\n", "anonreg: строка 2: данные человека пишутся так"),
            (["linkage", "--batch"], "", "anonreg: во вводе нет ни одной строки с данными человека\n"),
            (["checkup", handle, "--outcome", "remission", "--on", "2026-02-30"], nil, "--on: нужна настоящая дата в виде ГГГГ-ММ-ДД"),
            (["due", "--before", "31.01.2026"], nil, "--before: нужна настоящая дата в виде ГГГГ-ММ-ДД"),
        ]
        for (arguments, input, expected) in cases {
            let result = try d.anonregWith(arguments + ["--lang", "ru"], input: input)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(expected), "\(arguments): \(result.stderr)")
            // The same mistake in English keeps the English words and the same code.
            let english = try d.anonregWith(arguments + ["--lang", "en"], input: input)
            #expect(english.status == 2)
            #expect(!english.stderr.contains(where: { ("а"..."я").contains($0) }), "\(arguments): \(english.stderr)")
        }
        #expect(try d.auditEntryCount() == auditBefore, "a refused input reached the daemon")
    }
}
