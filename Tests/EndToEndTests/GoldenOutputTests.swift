import Foundation
import SMTPCapTestSupport
import Testing

/// One locked run: a capture, a mode, the exit status and the stdout it must give
/// (captures/golden, written by captures/golden/make-golden.sh).
struct GoldenCase: CustomStringConvertible, Sendable {
    var name: String
    var mode: String
    var status: Int32
    var description: String { "\(name) \(mode)" }

    var isPeer: Bool { name.hasPrefix("peer-") }
    var capture: String { isPeer ? String(name.dropFirst("peer-".count)) : name }
    var directory: URL { isPeer ? E2E.peerCaptures : E2E.captures }
    var expected: URL { E2E.captures.appendingPathComponent("golden/\(name).\(mode).out") }
    var arguments: [String] {
        switch mode {
        case "json": ["-r", capture, "--json"]
        case "verbose": ["-r", capture, "-v"]
        case "verbose-json": ["-r", capture, "-v", "--json"]
        default: ["-r", capture]
        }
    }
}

func loadGoldenCases() -> [GoldenCase] {
    let index = E2E.captures.appendingPathComponent("golden/status.tsv")
    guard let text = try? String(contentsOf: index, encoding: .utf8) else { return [] }
    return text.split(separator: "\n").compactMap { line in
        let f = line.split(separator: "\t").map(String.init)
        guard f.count == 3, let status = Int32(f[2]) else { return nil }
        return GoldenCase(name: f[0], mode: f[1], status: status)
    }
}

/// Behaviour locked byte for byte: text, JSON and transcript output on every capture in
/// captures/ and ../shared/peer-captures, through the mapped reader and through libpcap's.
@Suite("Golden output (captures/golden)")
struct GoldenOutputTests {
    static let all = loadGoldenCases()
    static let own = all.filter { !$0.isPeer }
    static let peers = all.filter { $0.isPeer }

    @Test func everyCaptureIsLocked() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: E2E.captures.path)
            .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }
        #expect(!files.isEmpty)
        for file in files {
            #expect(Set(Self.own.filter { $0.name == file }.map(\.mode)) == ["text", "json", "verbose", "verbose-json"],
                    "\(file) has no golden output: run captures/golden/make-golden.sh")
        }
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: E2E.peerCaptures.path), "../shared/peer-captures is not present"))
    func everyPeerCaptureIsLocked() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: E2E.peerCaptures.path)
            .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }
        #expect(!files.isEmpty)
        for file in files {
            #expect(Set(Self.peers.filter { $0.name == "peer-" + file }.map(\.mode)) == ["text", "json", "verbose", "verbose-json"],
                    "\(file) has no golden output: run captures/golden/make-golden.sh")
        }
    }

    @Test(arguments: own)
    func capture(_ c: GoldenCase) throws { try Self.check(c) }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: E2E.peerCaptures.path), "../shared/peer-captures is not present"),
          arguments: peers)
    func peerCapture(_ c: GoldenCase) throws { try Self.check(c) }

    static func check(_ c: GoldenCase) throws {
        let expected = try String(contentsOf: c.expected, encoding: .utf8)
        for reader in [[], ["--no-mmap"]] {
            let result = try E2E.run(c.arguments + reader, in: c.directory)
            #expect(result.status == c.status, "\(c) \(reader): \(result.stderr)")
            if result.stdout != expected {
                let got = result.stdout.split(separator: "\n", omittingEmptySubsequences: false)
                let want = expected.split(separator: "\n", omittingEmptySubsequences: false)
                let at = zip(got, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, want.count)
                Issue.record("""
                    \(c) \(reader): output differs from captures/golden at line \(at + 1)
                      got:  \(at < got.count ? String(got[at]) : "<end>")
                      want: \(at < want.count ? String(want[at]) : "<end>")
                    """)
            }
        }
    }
}
