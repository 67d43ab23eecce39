import Foundation
import Testing

/// Paths and a runner for the built `smtpcap` binary.
enum E2E {
    static let repoRoot: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let captures = repoRoot.appendingPathComponent("captures")
    static let peerCaptures = repoRoot.deletingLastPathComponent().appendingPathComponent("shared/peer-captures")

    /// The binary built next to this test bundle (`swift build --build-tests` builds it), or
    /// SMTPCAP_BIN.
    static var binary: String {
        if let explicit = ProcessInfo.processInfo.environment["SMTPCAP_BIN"] { return explicit }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        var dir = exe.deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("smtpcap").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return repoRoot.appendingPathComponent(".build/debug/smtpcap").path
    }

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var json: [[String: Any]] {
            stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        var sessions: [[String: Any]] { json.filter { $0["type"] as? String == "session" } }
        var summary: [String: Any]? { json.first { $0["type"] as? String == "summary" } }
    }

    /// Polls `condition` every 20 ms until it holds or `seconds` have passed; says whether it
    /// held. The one place tests wait: a deadline so that a stuck child process cannot hang the
    /// run, never a measure of speed.
    @discardableResult
    static func waitUntil(seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while !condition() {
            if DispatchTime.now().uptimeNanoseconds >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    static func run(_ arguments: [String], stdin: Data? = nil, timeout: TimeInterval = 120, in directory: URL? = nil) throws -> Result {
        try runProgram(binary, arguments, stdin: stdin, timeout: timeout, in: directory)
    }

    static func runProgram(_ program: String, _ arguments: [String], stdin: Data? = nil, timeout: TimeInterval = 120,
                           in directory: URL? = nil) throws -> Result {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        if let directory { p.currentDirectoryURL = directory }
        // Output goes to files: no pipe can fill up and block the process.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let outURL = dir.appendingPathComponent("out"), errURL = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: outURL)
        p.standardError = try FileHandle(forWritingTo: errURL)
        if let stdin {
            let inURL = dir.appendingPathComponent("in")
            try stdin.write(to: inURL)
            p.standardInput = try FileHandle(forReadingFrom: inURL)
        } else {
            p.standardInput = FileHandle.nullDevice
        }
        try p.run()
        waitUntil(seconds: timeout) { !p.isRunning }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        return Result(status: p.terminationStatus,
                      stdout: String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self),
                      stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
    }

    static func which(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
            let path = dir + "/" + tool
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

/// The facts compared per session, named as in the peer manifest and captures/expected.json.
struct SessionFacts: Equatable, CustomStringConvertible {
    var ehloStarttlsOffered: [Bool]
    /// smtpcap only: the same list without replies a gap damaged (cut by the capture).
    var ehloStarttlsOfferedComplete: [Bool]?
    var starttlsCommand: Bool
    var starttlsReply: Int?
    var tlsHandshake: Bool
    var tlsVersion: String?
    var plaintextDataMessages: Int
    var plaintextAuth: Bool

    /// Equal, where a reply smtpcap marks as damaged may be absent from the ground truth.
    func matches(_ truth: SessionFacts) -> Bool {
        var mine = self
        if mine.ehloStarttlsOffered != truth.ehloStarttlsOffered, let complete = ehloStarttlsOfferedComplete,
           complete == truth.ehloStarttlsOffered {
            mine.ehloStarttlsOffered = complete
        }
        mine.ehloStarttlsOfferedComplete = nil
        return mine == truth
    }

    var description: String {
        "ehlo=\(ehloStarttlsOffered) starttls=\(starttlsCommand)/\(starttlsReply.map(String.init) ?? "nil") tls=\(tlsHandshake)/\(tlsVersion ?? "nil") msgs=\(plaintextDataMessages) auth=\(plaintextAuth)"
    }

    /// From a manifest entry.
    init(manifest m: [String: Any]) {
        ehloStarttlsOffered = m["ehlo_starttls_offered"] as? [Bool] ?? []
        ehloStarttlsOfferedComplete = nil
        starttlsCommand = m["starttls_command"] as? Bool ?? false
        starttlsReply = m["starttls_reply"] as? Int
        tlsHandshake = m["tls_handshake"] as? Bool ?? false
        tlsVersion = (m["tls_version"] as? String).map { $0.replacingOccurrences(of: "TLSv", with: "TLS") }
        plaintextDataMessages = m["plaintext_data_messages"] as? Int ?? 0
        plaintextAuth = m["plaintext_auth"] as? Bool ?? false
    }

    /// From one of smtpcap's JSON session objects.
    init(smtpcap s: [String: Any]) {
        let starttls = s["starttls"] as? [String: Any] ?? [:]
        let tls = s["tls"] as? [String: Any]
        let tlsStarted = tls?["started"] as? Bool ?? false
        let starttlsFrame = starttls["frame"] as? Int ?? 0
        let accepted = starttls["reply"] as? Int == 220
        // EHLO replies seen in plaintext: after an accepted STARTTLS that led to TLS, none are.
        let plaintextEHLO = (s["ehlo"] as? [[String: Any]] ?? []).filter { e in
            !(accepted && tlsStarted && (e["frame"] as? Int ?? 0) > starttlsFrame)
        }
        ehloStarttlsOffered = plaintextEHLO.compactMap { $0["starttls"] as? Bool }
        ehloStarttlsOfferedComplete = plaintextEHLO.filter { $0["complete"] as? Bool ?? true }.compactMap { $0["starttls"] as? Bool }
        starttlsCommand = starttls["requested"] as? Bool ?? false
        starttlsReply = starttls["reply"] as? Int
        tlsHandshake = tlsStarted
        tlsVersion = tls?["version"] as? String
        plaintextDataMessages = (s["messages"] as? [Any] ?? []).count + (s["messages_not_listed"] as? Int ?? 0)
        let auth = s["auth"] as? [String: Any]
        plaintextAuth = auth?["plaintext"] as? Bool ?? false
    }
}
