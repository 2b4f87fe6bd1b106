import RegistryProtocol
import RegistryText
import Testing

@testable import RegistryCore

/// The status reason in every language, for every status and every branch the rules can
/// produce (active, due, overdue, completed; remission running, no check-up yet, after a relapse).
struct ReasonLanguageTests {
    typealias T = MonitoringStateTests

    /// (name, state, day, status, English, Russian)
    static let cases: [(String, MonitoringState, Day, String, String, String)] = [
        (
            "fresh, active", MonitoringState(episode: T.episode(), checkups: []), T.day("2026-02-01"), "active",
            "enrolled on 2026-01-01; no check-up yet; remission not yet recorded; next check-up due 2026-04-01; monitoring ends at the latest on 2030-12-31",
            "наблюдение начато 1 января 2026; осмотров ещё не было; ремиссия пока не отмечена; следующий осмотр 1 апреля 2026; наблюдение закончится не позже 31 декабря 2030"
        ),
        (
            "fresh, due", MonitoringState(episode: T.episode(), checkups: []), T.day("2026-04-02"), "due",
            "enrolled on 2026-01-01; no check-up yet; remission not yet recorded; check-up due since 2026-04-01; monitoring ends at the latest on 2030-12-31",
            "наблюдение начато 1 января 2026; осмотров ещё не было; ремиссия пока не отмечена; пора на осмотр: срок наступил 1 апреля 2026; наблюдение закончится не позже 31 декабря 2030"
        ),
        (
            "remission, overdue", MonitoringState(episode: T.episode(), checkups: [T.checkup("2026-02-01", .remission)]),
            T.day("2026-06-15"), "overdue",
            "remission since 2026-02-01; 1095 days required; earliest end 2029-01-31; check-up overdue since 2026-06-01 (was due 2026-05-02); monitoring ends at the latest on 2030-12-31",
            "ремиссия с 1 февраля 2026; нужно 1095 дней; наблюдение может закончиться не раньше 31 января 2029; осмотр просрочен с 1 июня 2026 (нужен был 2 мая 2026); наблюдение закончится не позже 31 декабря 2030"
        ),
        (
            "after a relapse",
            MonitoringState(episode: T.episode(), checkups: [T.checkup("2026-02-01", .remission), T.checkup("2026-03-01", .relapse)]),
            T.day("2026-03-02"), "active",
            "no remission recorded since the last relapse; 1095 days of remission required; next check-up due 2026-05-30; monitoring ends at the latest on 2030-12-31",
            "после последнего срыва ремиссия не отмечена; нужно 1095 дней ремиссии; следующий осмотр 30 мая 2026; наблюдение закончится не позже 31 декабря 2030"
        ),
        (
            "completed",
            MonitoringState(episode: T.episode(), checkups: [T.checkup("2026-02-01", .remission), T.checkup("2029-01-31", .remission)]),
            T.day("2029-02-01"), "completed",
            "monitoring completed on 2029-01-31: 1095 days of remission since 2026-02-01 were confirmed",
            "наблюдение завершено 31 января 2029: ремиссия с 1 февраля 2026 подтверждена, нужный срок (1095 дней) пройден"
        ),
    ]

    @Test func everyStatusHasAReasonInEveryLanguage() {
        var statuses = Set<String>()
        for (name, state, day, status, english, russian) in Self.cases {
            #expect(state.status(on: day) == status, "\(name)")
            statuses.insert(status)
            #expect(state.reason(on: day, language: .en) == english, "\(name)")
            #expect(state.reason(on: day, language: .ru) == russian, "\(name)")
            #expect(state.reason(on: day) == english, "\(name): English is the default")
            for language in Language.allCases {
                let text = state.reason(on: day, language: language)
                #expect(!text.contains("{") && !text.contains("reason."), "\(name) \(language): \(text)")
                #expect(state.wire(on: day, language: language).reason == text)
            }
        }
        #expect(statuses == ["active", "due", "overdue", "completed"])
    }

    /// Russian plural forms inside reasons: 1 день, 2 дня, 5 дней, 11 дней, 21 день, 22 дня.
    @Test(arguments: [(1, "1 день"), (2, "2 дня"), (5, "5 дней"), (11, "11 дней"), (21, "21 день"), (22, "22 дня")])
    func reasonsUseRussianPlurals(days: Int, words: String) {
        let policy = Policy(
            checkupIntervalDays: 90, remissionDays: days, relapse: .restart, relapseExtendDays: 0, capDays: 1825, overdueAfterDays: 30)
        let state = MonitoringState(
            episode: T.episode(policy),
            checkups: [
                T.checkup("2026-02-01", .remission, policy: policy),
                T.checkup("2026-03-01", .relapse, policy: policy),
            ])
        let reason = state.reason(on: T.day("2026-03-02"), language: .ru)
        #expect(reason.contains("нужно \(words) ремиссии"), "\(reason)")
        #expect(
            state.reason(on: T.day("2026-03-02"), language: .en).contains(days == 1 ? "1 day of remission" : "\(days) days of remission"))
    }
}
