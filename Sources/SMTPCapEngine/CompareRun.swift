import Comparison
import PcapSource
import Reporting
import SMTPMachine

/// `smtpcap compare A B`: analyzes both captures with the same pipeline as `-r` (with
/// transcripts), pairs their sessions and reports the differences.
public enum CompareRun {
    public struct Outcome: Sendable {
        public var report: String
        public var identical: Bool
    }

    /// Analyzes one capture and keeps its sessions.
    static func sessions(_ path: String, options base: EngineOptions) throws(PcapError) -> [SessionRecord] {
        var o = base
        o.files = [path]
        o.format = .records
        o.transcript = true
        o.jobs = 1
        o.progress = false
        let engine = Engine(options: o)
        _ = try engine.run()
        if engine.sessionsNotKept > 0 {
            throw PcapError(.other, "\(path) holds more sessions than compare keeps (\(engine.sessions.count + engine.sessionsNotKept); at most \(SessionPrinter.maxCollected), 1,000,000 transcript lines): cut both captures to the time of the test (editcap -A/-B)")
        }
        if engine.sessions.isEmpty {
            let seen = CaptureExplanation.notSMTP(engine.captureFacts, sessions: 0) ?? "\(engine.captureFacts.packets) packet(s)"
            throw PcapError(.other, "\(path) holds no SMTP session to compare (\(seen))")
        }
        return engine.sessions
    }

    public static func run(_ a: String, _ b: String, options: EngineOptions, json: Bool, color: Bool) throws(PcapError) -> Outcome {
        let sa = try sessions(a, options: options)
        let sb = try sessions(b, options: options)
        let result = Comparison.compare(sa, sb)
        let report = CompareReport(color: color, fileA: a, fileB: b)
        return Outcome(report: json ? report.json(result) : report.text(result), identical: result.identical)
    }
}
