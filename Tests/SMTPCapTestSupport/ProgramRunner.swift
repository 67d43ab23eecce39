import Foundation

/// Paths and a runner for the built `smtpcap` binary.
public enum E2E {
    public static let repoRoot = TestPaths.repoRoot
    public static let captures = TestPaths.captures
    public static let peerCaptures = TestPaths.peerCaptures

    /// The binary built next to this test bundle (`swift build --build-tests` builds it), or
    /// SMTPCAP_BIN.
    public static var binary: String {
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

    public struct Result {
        public var status: Int32
        public var stdout: String
        public var stderr: String

        public init(status: Int32, stdout: String, stderr: String) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
        }

        public var json: [[String: Any]] {
            stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        }
        public var sessions: [[String: Any]] { json.filter { $0["type"] as? String == "session" } }
        public var summary: [String: Any]? { json.first { $0["type"] as? String == "summary" } }
    }

    /// The status of a run that the deadline stopped.
    public static let timedOutStatus: Int32 = 124

    /// Polls `condition` every 20 ms until it holds or `seconds` have passed; says whether it
    /// held. The one place tests wait: a deadline so that a stuck child process cannot hang the
    /// run, never a measure of speed.
    @discardableResult
    public static func waitUntil(seconds: TimeInterval, _ condition: () -> Bool) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while !condition() {
            if DispatchTime.now().uptimeNanoseconds >= deadline { return false }
            usleep(20_000)
        }
        return true
    }

    public static func run(_ arguments: [String], stdin: Data? = nil, timeout: TimeInterval = 120, in directory: URL? = nil) throws -> Result {
        try runProgram(binary, arguments, stdin: stdin, timeout: timeout, in: directory)
    }

    public static func runProgram(_ program: String, _ arguments: [String], stdin: Data? = nil, timeout: TimeInterval = 120,
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
        let ended = waitUntil(seconds: timeout) { !p.isRunning }
        if p.isRunning { p.terminate() }
        p.waitUntilExit()
        // A run stopped by the deadline reports 124 (as timeout(1) does), whatever the program
        // did on SIGTERM: a hang must not pass for a clean exit.
        return Result(status: ended ? p.terminationStatus : Self.timedOutStatus,
                      stdout: String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self),
                      stderr: String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self))
    }

    public static func which(_ tool: String) -> String? {
        for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin", "/bin", "/sbin"] {
            let path = dir + "/" + tool
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
}

