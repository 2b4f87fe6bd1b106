import Foundation
import HTTPTypes
import RegistryCore
import RegistryCrypto
import RegistryProtocol
import Testing

@testable import RegistryServer

struct ErrorMappingTests {
    @Test func wireErrorsAre400WithTheirCode() {
        let e = APIError.from(WireError.invalidDate("consent.givenOn"))
        #expect(e.status == .badRequest)
        #expect(e.code == "invalid_date")
        #expect(e.message.contains("consent.givenOn"))
    }

    @Test func domainKindsMapToStatuses() {
        #expect(APIError.from(DomainError(.unprocessable, "consent_required", "m")).status == .unprocessableContent)
        #expect(APIError.from(DomainError(.notFound, "case_not_found", "m")).status == .notFound)
        #expect(APIError.from(DomainError(.storageFull, "storage_full", "m")).status.code == 507)
        #expect(APIError.from(DomainError(.badRequest, "invalid_linkage", "m")).status == .badRequest)
    }

    @Test func cryptoElementErrorsAreInvalidElement() {
        #expect(APIError.from(CryptoError.identityElement) == .invalidElement)
        #expect(APIError.from(CryptoError.invalidElement) == .invalidElement)
        #expect(APIError.from(CryptoError.authenticationFailed) == .internalError)
    }

    /// fuzz-request drained the OPRF bucket through the in-process responder, which has no
    /// special case for RetryLater: the refusal came out as 500 internal_error.
    @Test func aRateLimitRefusalIs429EverywhereNot500() {
        let mapped = APIError.from(APIError.RetryLater(error: .rateLimited, seconds: 3))
        #expect(mapped.status == .tooManyRequests)
        #expect(mapped.code == APIError.rateLimited.code)
    }

    @Test func unknownErrorsNeverLeakTheirText() {
        struct Leaky: Error, CustomStringConvertible { var description: String { "7TH6-TX19-PWFG-CCSY secret" } }
        let e = APIError.from(Leaky())
        #expect(e == .internalError)
        #expect(!e.message.contains("secret"))
    }

    /// An unknown field's name is never part of the message: it says where the field was and
    /// which fields are accepted there (issue 14 §4: a hyphen-less patient code sent as a key).
    @Test func unknownFieldMessagesNameOnlyKnownFields() throws {
        let inBody = WireError.unknownField(in: "body", accepted: ["consent", "category"])
        #expect(
            inBody.message
                == "the body has a field this endpoint does not know (its name is not repeated); it accepts only \"consent\", \"category\"")
        let nested = WireError.unknownField(in: "consent", accepted: ["form"])
        #expect(nested.message.hasPrefix("\"consent\" has a field"))
        #expect(WireError.unknownField(in: "query", accepted: []).message.hasSuffix("this endpoint takes no query parameters"))
        #expect(WireError.unknownField(in: "body", accepted: []).message.hasSuffix("this endpoint takes no body"))
        // Decoding a body with an unknown key names its container, never the key.
        let code = "7TH6TX19PWFGCCSYSFQ7SWRP6SV"
        do {
            _ = try JSONDecoder().decode(EnrolRequest.self, from: Data("{\"\(code)\":1}".utf8))
            Issue.record("an unknown field was accepted")
        } catch let error as WireError {
            #expect(error.code == "unknown_field")
            #expect(!error.message.contains(code))
            #expect(!error.message.contains("7TH6"))
        }
    }
}

struct RateLimiterTests {
    final class FakeTime: @unchecked Sendable {
        var now: Double = 0
    }

    @Test func bucketsRefillAndArePerClinic() {
        let time = FakeTime()
        let limiter = RateLimiter(perMinute: 60, burst: 2, now: { time.now })
        let a = ClinicID("a")!
        let b = ClinicID("b")!
        #expect(limiter.allow(a))
        #expect(limiter.allow(a))
        #expect(!limiter.allow(a))
        #expect(limiter.allow(b), "another clinic has its own bucket")
        time.now = 1.0  // one token per second
        #expect(limiter.allow(a))
        #expect(!limiter.allow(a))
        time.now = 100
        #expect(limiter.allow(a))
        #expect(limiter.allow(a))
        #expect(!limiter.allow(a), "the bucket holds at most burst tokens")
    }

    @Test func aReloadKeepsTheBuckets() {
        let time = FakeTime()
        let limiter = RateLimiter(perMinute: 60, burst: 3, now: { time.now })
        let a = ClinicID("a")!
        for _ in 0..<3 { #expect(limiter.allow(a)) }
        let same = limiter.reconfigured(perMinute: 60, burst: 3)
        #expect(!same.allow(a), "a reload must not refill an empty bucket")
        time.now = 1
        #expect(same.allow(a), "refill continues at the configured rate")
        let smaller = limiter.reconfigured(perMinute: 60, burst: 1)
        time.now = 100
        #expect(smaller.allow(a))
        #expect(!smaller.allow(a), "a lower burst caps what a bucket holds")
    }
}

struct AccessRuleTests {
    @Test func rulesAdmitTheRightRoles() {
        let clinic = Role.clinic(ClinicID("a")!)
        let admin = Role.admin(uid: 0)
        let stats = Role.statistician(uid: 5)
        #expect(AccessRule.clinic.admits([clinic]))
        #expect(!AccessRule.clinic.admits([admin, stats]))
        #expect(AccessRule.admin.admits([admin]))
        #expect(!AccessRule.admin.admits([clinic, stats]))
        #expect(AccessRule.statistics.admits([stats]))
        #expect(AccessRule.statistics.admits([admin]))
        #expect(!AccessRule.statistics.admits([clinic]))
        #expect(AccessRule.anyKnownPeer.admits([stats]))
        #expect(!AccessRule.anyKnownPeer.admits([]))
    }

    /// The monitor role: the metrics and health, nothing that touches registry data.
    @Test func aMonitorIsAdmittedOnlyByMonitoringAndAnyKnownPeer() {
        let monitor = Role.monitor(uid: 9)
        let clinic = Role.clinic(ClinicID("a")!)
        let stats = Role.statistician(uid: 5)
        #expect(AccessRule.monitoring.admits([monitor]))
        #expect(AccessRule.monitoring.admits([Role.admin(uid: 0)]))
        #expect(!AccessRule.monitoring.admits([clinic, stats]))
        #expect(AccessRule.anyKnownPeer.admits([monitor]))
        for rule in [AccessRule.clinic, .admin, .statistics] { #expect(!rule.admits([monitor]), "\(rule)") }
        let open = RouteTable.routes.filter { $0.access.admits([monitor]) }.map { "\($0.method) \($0.path)" }.sorted()
        #expect(open == ["GET /metrics", "GET /v1/health"])
    }
}
