import Foundation

/// The `main` shared by the fuzz targets (docs/ROBUSTNESS.md §Fuzzing).
///
/// - Built by scripts/fuzz.sh (`-sanitize=fuzzer,address -DANONREG_LIBFUZZER`), it starts
///   libFuzzer's driver with the target's `LLVMFuzzerTestOneInput`: SwiftPM links every
///   executable with `main` aliased to the module's entry point, so libFuzzer's own `main` is
///   never linked in.
/// - In a normal build it is a replayer: each argument is a file (a corpus entry or a crash
///   reproducer) or a directory of them, fed to `replay` one by one.
public enum FuzzDriver {
    public typealias Entry = @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt

    public static func main(entry: Entry, replay: ([UInt8]) -> Void) -> Never {
        #if ANONREG_LIBFUZZER
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, entry))
        #else
            for argument in CommandLine.arguments.dropFirst() {
                var isDirectory: ObjCBool = false
                guard FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory) else {
                    fatalError("no such file: \(argument)")
                }
                let files =
                    isDirectory.boolValue
                    ? ((try? FileManager.default.contentsOfDirectory(atPath: argument)) ?? []).sorted().map { argument + "/" + $0 }
                    : [argument]
                for file in files {
                    guard let bytes = FileManager.default.contents(atPath: file) else { continue }
                    replay(Array(bytes))
                    print("ok \(file)")
                }
            }
            exit(0)
        #endif
    }

    /// The bytes libFuzzer hands to `LLVMFuzzerTestOneInput`.
    public static func bytes(_ start: UnsafePointer<UInt8>?, _ count: Int) -> [UInt8] {
        start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    }
}

#if ANONREG_LIBFUZZER
    // swift-format-ignore: AlwaysUseLowerCamelCase
    // libFuzzer's C entry point, by its C name.
    @_silgen_name("LLVMFuzzerRunDriver")
    func LLVMFuzzerRunDriver(
        _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
        _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
    ) -> CInt
#endif
