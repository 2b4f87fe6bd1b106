import Foundation
import Testing

@testable import AnonregClinic
@testable import UnixHTTP

/// Issue 23 §6: the CLI's socket client treats every answer as untrusted. Each of these answers
/// made the old parser trap (`prefix(-1)`, `size + 2` overflowing); now each is refused.
struct HTTPResponseParserTests {
    static func answer(_ text: String) -> Data { Data(text.utf8) }

    @Test(arguments: [
        ("negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nabc"),
        ("Content-Length with a sign", "HTTP/1.1 200 OK\r\nContent-Length: +3\r\n\r\nabc"),
        ("huge Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\nabc"),
        ("body shorter than announced", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
        ("two Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        ("negative chunk size", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\nabc\r\n0\r\n\r\n"),
        ("chunk size that overflows size + 2", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n7fffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ("chunk size past Int", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n"),
        ("chunk without its CRLF", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcXY0\r\n\r\n"),
        ("short chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc\r\n"),
        ("status out of range", "HTTP/1.1 999 What\r\nContent-Length: 0\r\n\r\n"),
        ("negative status", "HTTP/1.1 -20 What\r\nContent-Length: 0\r\n\r\n"),
        ("not HTTP", "SSH-2.0-OpenSSH_9.2\r\n\r\n"),
        ("no header end", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"),
    ])
    func hostileAnswersAreRefused(name: String, text: String) {
        #expect(throws: HTTPResponseParser.Failure.self, "\(name)") { _ = try HTTPResponseParser.parse(Self.answer(text)) }
    }

    @Test func wellFormedAnswersParse() throws {
        let plain = try HTTPResponseParser.parse(
            Self.answer("HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}extra"))
        #expect(plain.head.status == 201 && plain.body == Data("{}".utf8))
        let chunked = try HTTPResponseParser.parse(
            Self.answer("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n1\r\nd\r\n0\r\n\r\n"))
        #expect(chunked.body == Data("abcd".utf8))
        let closed = try HTTPResponseParser.parse(Self.answer("HTTP/1.1 500 Internal Server Error\r\n\r\nbye"))
        #expect(closed.head.status == 500 && closed.body == Data("bye".utf8))
    }

    @Test func aHeadLargerThanOneMiBIsRefused() {
        let big = Data("HTTP/1.1 200 OK\r\nX: ".utf8) + Data(repeating: 0x61, count: HTTPResponseParser.maxHead + 10)
        #expect(throws: HTTPResponseParser.Failure.self) { _ = try HTTPResponseParser.headLength(big) }
    }
}
