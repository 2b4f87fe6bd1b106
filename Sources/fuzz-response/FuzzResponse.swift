import Foundation
import FuzzDriver
// libFuzzer target 3 (issue 23 §6): the parser of the daemon's answers every socket client
// shares (UnixHTTP.HTTPResponseParser), which must treat every answer as untrusted. Built for
// fuzzing by scripts/fuzz.sh; a normal build makes a replayer (docs/ROBUSTNESS.md §Fuzzing).
import UnixHTTP

/// Properties: no trap; a parsed answer has a status from 100 to 599 and a body no longer than
/// the input; a chunked body decodes to no more bytes than it was sent in.
func fuzzOne(_ data: [UInt8]) {
    let raw = Data(data)
    if let (head, body) = try? HTTPResponseParser.parse(raw) {
        precondition((100...599).contains(head.status), "status \(head.status) accepted")
        precondition(body.count <= raw.count, "a body longer than the answer")
        if let length = head.contentLength { precondition(Int64(body.count) == length, "body length differs from Content-Length") }
    }
    if let length = try? HTTPResponseParser.headLength(raw) {
        precondition(length <= raw.count && length <= HTTPResponseParser.maxHead)
        _ = try? HTTPResponseParser.head(raw.prefix(length - 4))
    }
    if let body = try? HTTPResponseParser.dechunk(raw) { precondition(body.count <= raw.count) }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzResponseEntry(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    fuzzOne(FuzzDriver.bytes(start, count))
    return 0
}

@main
enum FuzzResponseMain {
    static func main() { FuzzDriver.main(entry: fuzzResponseEntry, replay: fuzzOne) }
}
