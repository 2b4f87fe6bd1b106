import Foundation
import RegistryCore
import RegistryProtocol

extension ScaleBench {
    /// Fast fill: one template subject goes through the domain (enrol + 3 check-ups), its
    /// record plaintexts and clear columns are read back, and every other subject is enrolled
    /// through the store in ONE transaction carrying the same five records, with its dates
    /// shifted and its clinic renamed. Each subject still gets its own DEK, code, case handle
    /// and sealed records, exactly as stored by the domain; only the per-check-up transactions
    /// (and their counters) are skipped. Its monitoring summary is copied the same way.
    func fillBulk(stateDir: String, today: Day) async throws -> ([String], Double) {
        let registry = try InProcessRegistry(stateDir: stateDir)
        let last = today.adding(days: -1)
        let template = try await registry.enrol(Workload.enrolBody(enrolledOn: last.adding(days: -150)))
        for (k, day) in [last.adding(days: -120), last.adding(days: -60), last].enumerated() {
            let outcome = k == 1 ? "relapse" : "remission"
            try await registry.checkup(
                template,
                "{\"on\":\"\(day)\",\"outcome\":\"\(outcome)\",\"substances\":[\(outcome == "relapse" ? "\"opioids\"" : "")],"
                    + "\"treatment\":[\"methadone\"],\"note\":\"scale fill check-up \(k + 1)\"}")
        }
        let view = try await registry.store.subject(case: CaseHandle(template)!, clinic: registry.clinic)
        let records = view.records.filter { $0.kind != .link }.map { (kind: $0.kind, text: String(decoding: $0.plaintext, as: UTF8.self)) }
        let columns = view.columns
        // The sealed monitoring summary goes with them, shifted the same way (docs/STORAGE.md
        // §Summary), so that no filled subject waits for the backfill.
        let summary = view.summary.map { String(decoding: $0, as: UTF8.self) }
        let datePattern = try NSRegularExpression(pattern: "[0-9]{4}-[0-9]{2}-[0-9]{2}")
        @Sendable func shifted(_ text: String, by days: Int, clinic: String) -> [UInt8] {
            var out = ""
            var cursor = text.startIndex
            for match in datePattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
                let range = Range(match.range, in: text)!
                out += text[cursor..<range.lowerBound]
                out += Day(text[range]).map { $0.adding(days: -days).description } ?? String(text[range])
                cursor = range.upperBound
            }
            out += text[cursor...]
            if clinic != "local" { out = out.replacingOccurrences(of: "\"local\"", with: "\"\(clinic)\"") }
            return Array(out.utf8)
        }
        // Renaming the clinic changes the summary's length: it is padded again as the domain
        // pads it (MonitoringSummary.encoded: spaces to a multiple of 512 bytes).
        @Sendable func trimmed(_ text: String) -> String {
            var text = text
            while text.hasSuffix(" ") { text.removeLast() }
            return text
        }
        @Sendable func padded(_ bytes: [UInt8]) -> [UInt8] { bytes + [UInt8](repeating: 0x20, count: (512 - bytes.count % 512) % 512) }
        let local = Locked<[String]>([template])
        let done = SharedInt()
        let started = Clock.now()
        let total = subjects - 1
        let every = clinics
        let progress = Task {
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(15))
                let n = done.value
                print("  filled \(n) / \(total + 1) (\(Int(Double(n) / (Clock.now() - started)))/s)")
                flushOutput()
            }
        }
        let perWriter = writers
        try await withThrowingTaskGroup(of: Void.self) { group in
            for w in 0..<perWriter {
                group.addTask {
                    var i = w + 1
                    while i <= total {
                        let clinicName = i % every == 0 ? "local" : "clinic-\(i % every)"
                        let shift = (i / every + i) % 90
                        let receipt = try await registry.store.enrol(
                            Enrolment(
                                clinic: ClinicID(clinicName)!, linkage: nil,
                                records: records.map {
                                    NewRecord(kind: $0.kind, plaintext: shifted($0.text, by: shift, clinic: clinicName))
                                },
                                columns: SubjectColumns(
                                    status: columns.status, nextDue: columns.nextDue?.adding(days: -shift),
                                    reviewOn: columns.reviewOn?.adding(days: -shift)),
                                counters: [], summary: summary.map { padded(shifted(trimmed($0), by: shift, clinic: clinicName)) }))
                        if clinicName == "local" { local.withLock { $0.append(receipt.caseHandle.text) } }
                        _ = done.next()
                        i += perWriter
                    }
                }
            }
            try await group.waitForAll()
        }
        progress.cancel()
        let seconds = Clock.now() - started
        print(
            "filled \(subjects) subjects (bulk: one transaction each, 5 sealed records) in \(String(format: "%.0f", seconds)) s (\(Int(Double(subjects) / seconds)) subjects/s)"
        )
        registry.close()
        return (local.withLock { $0 }, seconds)
    }
}
