#if !FUZZING
#if canImport(Glibc)
import Glibc
#endif

/// Without libFuzzer: replays files (a corpus, or crashers kept as regressions) through the
/// harness named by SMTPCAP_FUZZ_TARGET. `smtpcap-fuzz FILE...`
@main
struct Replay {
    static func main() {
        var count = 0
        for path in CommandLine.arguments.dropFirst() {
            guard let f = fopen(path, "rb") else { continue }
            var bytes: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = fread(&buffer, 1, buffer.count, f)
                if n <= 0 { break }
                bytes += buffer[0..<n]
            }
            fclose(f)
            bytes.withUnsafeBytes { Harness.selected.run($0) }
            count += 1
        }
        print("replayed \(count) input(s) through \(Harness.selected.rawValue)")
    }
}
#endif

#if FUZZING
/// SwiftPM links an executable's entry point under the module's name; hand it to libFuzzer's
/// driver (LLVMFuzzerRunDriver, from the sanitizer runtime linked by -sanitize=fuzzer).
@_silgen_name("LLVMFuzzerRunDriver")
func runFuzzerDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

@_cdecl("smtpcap_fuzz_main")
func fuzzMain(_ argc: Int32, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> Int32 {
    var count = argc
    var vector = argv
    return runFuzzerDriver(&count, &vector) { data, size in
        Harness.selected.run(UnsafeRawBufferPointer(start: data, count: size))
        return 0
    }
}
#endif
