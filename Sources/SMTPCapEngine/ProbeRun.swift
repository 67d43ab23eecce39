import Dispatch
import Findings
import PcapSource
import Probe
import Reporting
import SMTPCapCore
import SMTPMachine
import Synchronization
import TLSHandshake

/// `smtpcap probe TARGET...`: resolves the targets as an MTA would, talks SMTP to every
/// address (never sending mail) while capturing its own connections, then analyzes the
/// capture with the same pipeline as `-r` and reports the sessions, a side-by-side summary
/// per MX host and address family, and a verdict line.
public enum ProbeRun {
    public struct Settings: Sendable {
        public var targets: [String] = []
        public var port = 25
        public var families = [4, 6]
        public var ehloName: String?
        public var timeoutSeconds = 10.0
        public var json = false
        public var color = false
        public var writeFile: String?
        public var interface: String?
        public init() {}
    }

    public struct Outcome: Sendable {
        public var report: String
        public var status: Int32
        /// A one-line error that ends the run before any probe (status 2).
        public var error: String?
    }

    /// A live capture on its own thread, dumping every packet it reads to a file. `finish`
    /// stops it and lets go of the handle, which closes the file.
    final class Capture: @unchecked Sendable {
        var source: PcapSource?
        let stop = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)

        init(source: PcapSource) { self.source = source }

        func start() {
            DispatchQueue.global().async { [self] in
                while !stop.load(ordering: .relaxed) {
                    if case .error(let message) = source!.next() {
                        failure = message
                        break
                    }
                }
                source!.flushDump()
                done.signal()
            }
        }

        /// Why the capture ended early, if it did.
        var failure: String?

        func finish() {
            stop.store(true, ordering: .relaxed)
            done.wait()
            source = nil
        }
    }

    public static func run(_ settings: Settings, options base: EngineOptions) -> Outcome {
        let (addresses, problems) = ProbeResolver.resolve(settings.targets, families: settings.families)
        let problemLines = problems.map { (target: $0.target + ($0.host.map { " (\($0))" } ?? ""), message: $0.message) }
        let badTarget = settings.targets.contains { t in !addresses.contains { $0.target == t } }

        // Sockets first: their local ports make the capture filter.
        var sockets: [(address: ProbeAddress, fd: Int32, port: Int)] = []
        var rows: [ProbeRow] = []
        for a in addresses {
            if let (fd, port) = ProbeDialogue.socket(family: a.family) {
                sockets.append((a, fd, port))
            } else {
                var row = ProbeRow(target: a.target, mx: a.mx, preference: a.preference, address: a.address, family: a.family, fromWire: false)
                row.error = "no socket of this family on this host"
                row.notTestableHere = true
                rows.append(row)
            }
        }

        // The capture: the interface given, else all of them; only our own connections.
        var wireNote: String?
        var capture: Capture?
        var dumpPath: String?
        defer { if settings.writeFile == nil, let dumpPath { System.remove(dumpPath) } }
        if !sockets.isEmpty {
            do throws(PcapError) {
                let source = try PcapSource.openLive(device: settings.interface ?? "any", snapLength: 262_144,
                                                     promiscuous: false, timeoutMilliseconds: 20)
                try source.setFilter("tcp and (" + sockets.map { "(host \($0.address.address) and port \($0.port))" }
                    .joined(separator: " or ") + ")")
                guard let path = settings.writeFile ?? System.temporaryPath(prefix: "smtpcap-probe") else {
                    throw PcapError(.other, "no temporary file for the capture")
                }
                dumpPath = path
                try source.openDump(path)
                capture = Capture(source: source)
                capture?.start()
            } catch {
                // Asked for by name (-w, -i): not having it is an error; else say so and go on.
                if settings.writeFile != nil || settings.interface != nil {
                    for s in sockets { ProbeDialogue.close(s.fd) }
                    return Outcome(report: "", status: 2, error: error.message)
                }
                wireNote = "wire evidence unavailable (\(error.message)): what follows is what the sockets read"
            }
        }

        let dialogue = ProbeDialogue(ehloName: settings.ehloName,
                                     port: settings.port, timeoutMilliseconds: Int(settings.timeoutSeconds * 1000))
        var outcomes: [ProbeOutcome] = []
        for s in sockets { outcomes.append(dialogue.run(s.address, fd: s.fd, localPort: s.port)) }

        var records: [SessionRecord] = []
        if let running = capture, let dumpPath {
            // The last packets (FIN, ACK) reach the ring a moment after the sockets close.
            System.sleep(milliseconds: 300)
            running.finish()
            capture = nil
            if let failure = running.failure { wireNote = "the capture stopped early (\(failure))" }
            var o = base
            o.files = [dumpPath]
            o.format = .records
            o.jobs = 1
            o.progress = false
            o.ports = Array(Set(base.ports + [UInt16(settings.port)])).sorted()
            let engine = Engine(options: o)
            if (try? engine.run()) != nil {
                records = engine.sessions
            } else {
                wireNote = "the capture could not be read back: what follows is what the sockets read"
            }
            if records.isEmpty && outcomes.contains(where: { $0.banner != nil }) {
                wireNote = "the capture on \(settings.interface ?? "any") saw none of the probe's sessions (they do not pass there): what follows is what the sockets read"
            }
        }

        // Join each session to its probe by the local port and the server's address.
        for i in records.indices {
            // Local ports are this run's own (bound before connecting): they name the probe.
            if let o = outcomes.first(where: { $0.localPort == Int(records[i].client.port) && Int(records[i].server.port) == settings.port }) {
                records[i].probe = ProbeTag(target: o.address.target, address: o.address.address, mx: o.address.mx,
                                            preference: o.address.preference)
            }
        }
        records.removeAll { $0.probe == nil }
        // The summary over the probe's own sessions only.
        var summary = CaptureSummary()
        for r in records { summary.add(r) }
        for o in outcomes {
            let record = records.first { Int($0.client.port) == o.localPort }
            rows.append(row(o, record))
        }
        rows.sort { ($0.preference ?? 0, $0.mx ?? "", $0.family, $0.address) < ($1.preference ?? 0, $1.mx ?? "", $1.family, $1.address) }
        let verdict = ProbeVerdict.line(rows, problems: problems.count)

        // The report: the sessions as -r prints them, the summary, the probe table.
        let out = ByteSink(capacity: 1 << 16)
        let text = TextReport(color: settings.color, transcript: false)
        for r in records {
            if settings.json { JSONLinesReport.writeSession(r, file: nil, into: out) } else {
                text.writeSession(r, file: nil, into: out)
            }
        }
        var facts = CaptureFacts()
        facts.files = [settings.writeFile ?? "probe"]
        if settings.json {
            if !records.isEmpty { out.append(utf8: JSONLinesReport.summary(summary, capture: facts) + "\n") }
            out.append(utf8: ProbeReport.json(rows, problems: problemLines, wireNote: wireNote, verdict: verdict))
        } else {
            // The cross-session findings of the summary.
            var lines: [String] = []
            for i in summary.inconsistencies {
                let fam = { (f: Set<Int>) in f.sorted().map { "IPv\($0)" }.joined(separator: "+") }
                lines.append("starttls-inconsistent \(i.server): STARTTLS offered over \(fam(i.offeredFamilies)) but missing over \(fam(i.missingFamilies))")
            }
            lines += summary.pathInconsistencies.map { "path-inconsistent \($0.message)" }
            lines += summary.certificateInconsistencies.map { "certificate-inconsistent \($0.message)" }
            if !lines.isEmpty {
                out.append(utf8: "findings across sessions\n")
                for l in lines {
                    out.append(utf8: "  ")
                    Escape.terminal(l, into: out)
                    out.append(0x0a)
                }
            }
            out.append(utf8: ProbeReport.text(rows, problems: problemLines, wireNote: wireNote, verdict: verdict))
        }
        let findings = records.isEmpty
            ? rows.filter { $0.starttlsOffered == false || ($0.starttlsOffered == true && $0.tlsVersion == nil) }.count
            : summary.totalFindings
        // 2: a target that gave no address, or no address that answered; 1: findings, or an
        // address that could not be probed to the end (refused, timed out, TLS failed).
        let reached = outcomes.contains { $0.banner != nil }
        let failedHere = rows.contains { $0.error != nil && !$0.notTestableHere }
        let status: Int32 = badTarget || !reached ? 2 : (findings > 0 || failedHere ? 1 : 0)
        return Outcome(report: out.string(from: 0), status: status)
    }

    static func row(_ o: ProbeOutcome, _ r: SessionRecord?) -> ProbeRow {
        var row = ProbeRow(target: o.address.target, mx: o.address.mx, preference: o.address.preference,
                           address: o.address.address, family: o.address.family, fromWire: r != nil)
        row.error = o.error
        row.notTestableHere = o.notTestableHere
        if let r {
            row.banner = r.banner.map { "\(r.bannerCode ?? 0) \($0)" }
            let plaintext = r.ehlo.filter { e in !(r.starttls.reply == 220 && r.starttls.frame.map { e.frame > $0 } == true) }
            if let first = plaintext.first(where: { $0.code / 100 == 2 }) {
                row.starttlsOffered = first.starttls
                row.masked = first.maskedKeywords.first
            }
            if let hello = r.tls?.serverHello {
                row.tlsVersion = TLSNames.version(hello.version)
                row.tlsCipher = TLSNames.cipherSuite(hello.cipherSuite)
            }
            row.certificateSHA256 = r.tls?.certificate?.sha256 ?? o.certificateSHA256
            row.serverHops = PathEvidence(r).serverHops
            row.verdict = r.verdict
        } else {
            row.banner = o.banner
            row.starttlsOffered = o.ehlo.isEmpty ? nil : o.starttlsOffered
            row.tlsVersion = o.tlsVersion
            row.tlsCipher = o.tlsCipher
            row.certificateSHA256 = o.certificateSHA256
        }
        return row
    }
}
