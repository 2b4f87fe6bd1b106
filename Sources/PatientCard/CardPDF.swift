import Foundation

/// PDF cards are the SVG card converted by `rsvg-convert` (Debian's librsvg2-bin), which lays the
/// text out with the same fonts and embeds them. It is the only program the card needs at run time,
/// and only for PDF (docs/OPERATIONS.md §Patient cards). The SVG goes in on standard input and the
/// PDF comes back on standard output: the code is never in a temporary file or in an argument.
public enum CardPDF {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case converterMissing
        case converterFailed(status: Int32, message: String)

        public var description: String {
            switch self {
            case .converterMissing: "rsvg-convert is not installed (Debian package librsvg2-bin)"
            case .converterFailed(let status, let message): "rsvg-convert failed (exit \(status)): \(message)"
            }
        }
    }

    /// The converter on `PATH`, or nil.
    public static func converter(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        let path = environment["PATH"].flatMap { $0.isEmpty ? nil : $0 } ?? "/usr/local/bin:/usr/bin:/bin"
        for directory in path.split(separator: ":") where !directory.isEmpty {
            let candidate = String(directory) + "/rsvg-convert"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }

    public static func pdf(fromSVG svg: String) throws(Failure) -> Data {
        guard let executable = converter() else { throw .converterMissing }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["--format", "pdf"]
        var environment = ProcessInfo.processInfo.environment
        // cairo writes the PDF's CreationDate from SOURCE_DATE_EPOCH when it is set: the file then
        // carries 1970-01-01, not the day the card was made.
        environment["SOURCE_DATE_EPOCH"] = "0"
        process.environment = environment
        let input = Pipe()
        let output = Pipe()
        let errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        do { try process.run() } catch {
            throw .converterFailed(status: -1, message: "cannot start \(executable): \(error.localizedDescription)")
        }
        // Write on another thread while this one reads, so neither pipe can fill up and stall.
        let writer = Thread {
            try? input.fileHandleForWriting.write(contentsOf: Data(svg.utf8))
            try? input.fileHandleForWriting.close()
        }
        writer.start()
        let collected = ErrorCollector(errors.fileHandleForReading)
        let pdf = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let message = collected.text()
        guard process.terminationReason == .exit, process.terminationStatus == 0, pdf.starts(with: Data("%PDF-".utf8)) else {
            throw .converterFailed(status: process.terminationStatus, message: message.isEmpty ? "no PDF came back" : message)
        }
        return pdf
    }

    /// Reads a child's standard error on its own thread (it is small; capped at 4 KiB kept).
    final class ErrorCollector: @unchecked Sendable {
        private var data = Data()
        private let done = DispatchSemaphore(value: 0)

        init(_ handle: FileHandle) {
            Thread { [self] in
                let all = handle.readDataToEndOfFile()
                data = all.prefix(4096)
                done.signal()
            }.start()
        }

        func text() -> String {
            done.wait()
            return String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
    }
}
