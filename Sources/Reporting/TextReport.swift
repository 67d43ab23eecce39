import Findings
import SMTPCapCore
import SMTPMachine
import TCPReassembly
import TLSHandshake

/// The human report: a compact block per session and a summary. Wire strings are escaped;
/// colour only when asked (the caller checks for a terminal).
public struct TextReport {
    public var color: Bool
    public var transcript: Bool

    public init(color: Bool, transcript: Bool) {
        self.color = color
        self.transcript = transcript
    }

    func paint(_ s: String, _ code: String) -> String { color ? "\u{1b}[\(code)m\(s)\u{1b}[0m" : s }

    /// Text appended as bytes: trusted text (`add`, `text`), numbers, and wire text, which is
    /// always escaped (`wire`).
    struct TextWriter {
        let out: ByteSink
        var color = false

        init(into out: ByteSink, color: Bool) {
            self.out = out
            self.color = color
        }

        @inline(__always) func add(_ s: StaticString) { out.append(s) }
        /// Text made by smtpcap itself (names, codes); never wire bytes.
        func text(_ s: String) { out.append(utf8: s) }
        func wire(_ s: String) { Escape.terminal(s, into: out) }
        /// The first word of wire text (an EHLO keyword without its parameters), escaped.
        func wireFirstWord(_ s: String) {
            withUTF8Span(s) { b in Escape.terminal(span: b.extracting(firstWordRange(b)), into: out) }
        }
        func int<T: BinaryInteger>(_ v: T) { out.appendDecimal(Int64(v)) }
        func frame(_ f: UInt64?) {
            guard let f else { return }
            add("[frame ")
            int(f)
            add("]")
        }
        func endpoint(_ e: Endpoint) { e.append(into: out) }
        mutating func paint(_ code: StaticString, _ body: (inout TextWriter) -> Void) {
            if color {
                add("\u{1b}[")
                add(code)
                add("m")
            }
            body(&self)
            if color { add("\u{1b}[0m") }
        }
    }

    func verdictColor(_ v: Verdict) -> StaticString {
        switch v {
        case .encrypted: return "32"
        case .plaintext: return "31;1"
        case .stripped: return "35;1"
        case .inconclusive: return "33"
        }
    }

    public func session(_ r: SessionRecord, file: String?) -> String {
        var w = TextWriter(into: ByteSink(capacity: 2048), color: color)
        session(r, file: file, into: &w)
        return withExtendedLifetime(w.out) { String(decoding: w.out.bytes, as: UTF8.self) }
    }

    /// The session block, a blank line after it, written into `out` (the output's buffer).
    public func writeSession(_ r: SessionRecord, file: String?, into out: ByteSink) {
        var w = TextWriter(into: out, color: color)
        session(r, file: file, into: &w)
        w.add("\n")
    }

    func session(_ r: SessionRecord, file: String?, into w: inout TextWriter) {
        w.paint("1") { w in
            w.add("session ")
            w.int(r.id)
        }
        w.add("  ")
        let timeStart = w.out.count
        r.start.appendISO8601(into: w.out)
        w.out.removeLast(1)  // the Z
        for i in timeStart..<w.out.count where w.out[i] == 0x54 { w.out[i] = 0x20 }
        w.add(" UTC  ")
        w.endpoint(r.client)
        w.add(" -> ")
        w.endpoint(r.server)
        w.add(r.ipVersion == 6 ? "  IPv6" : "  IPv4")
        if let file {
            w.add("  (")
            w.wire(file)
            w.add(")")
        }
        w.add("\n  capture   frame ")
        w.int(r.firstFrame)
        if let name = r.interface {
            w.add(" on ")
            w.wire(name)
        }
        if let pause = r.resumedAfterIdleSeconds {
            w.add(", resumed after ")
            w.int(pause)
            w.add(" s idle")
        }
        w.add(", ")
        w.int(r.clientStats.bytes)
        w.add("/")
        w.int(r.serverStats.bytes)
        w.add(" bytes")
        if !r.handshakeSeen { w.add(", capture starts mid-session") }
        if r.gaps > 0 {
            w.add(", ")
            w.int(r.gaps)
            w.add(" gap(s)")
        }
        if let reason = r.closeReason {
            w.add(", ended: ")
            w.text(reason.rawValue)
        }
        w.add("\n")
        if let probe = r.probe {
            w.add("  probe     ")
            w.wire(probe.target)
            if let mx = probe.mx, mx != probe.target {
                w.add(", MX ")
                w.wire(mx)
            }
            if let preference = probe.preference {
                w.add(" (preference ")
                w.int(preference)
                w.add(")")
            }
            w.add(", address ")
            w.wire(probe.address)
            w.add("\n")
        }
        pathLine(PathEvidence(r), into: &w)
        if !r.tunnel.isEmpty {
            w.add("  tunnel    ")
            w.text(r.tunnel.map(\.description).joined(separator: " / "))
            w.add("\n")
        }
        if let banner = r.banner {
            w.add("  banner    ")
            if let code = r.bannerCode { w.int(code) }
            w.add(" ")
            w.wire(banner)
            if let provider = r.provider {
                w.add("  (")
                w.wire(provider)
                w.add(")")
            }
            w.add("\n")
        }
        if let name = r.heloName {
            w.add("  client    ")
            w.text(r.greeting ?? "greeting")
            w.add(" ")
            w.wire(name)
            w.add("\n")
        }
        for e in r.ehlo {
            w.add("  EHLO      ")
            if e.code / 100 == 2 {
                w.int(e.code)
                w.add(":")
                for keyword in e.keywords {
                    w.add(" ")
                    w.wireFirstWord(keyword)
                }
                if e.keywords.isEmpty { w.add(" ") }
                w.add("  (")
                if e.starttls {
                    w.add("STARTTLS offered")
                } else if e.complete {
                    w.paint("31") { $0.add("no STARTTLS") }
                } else {
                    w.add("no STARTTLS seen; the reply was cut by the capture")
                }
                w.add(") ")
            } else {
                w.add("rejected with ")
                w.int(e.code)
                w.add(" ")
            }
            w.frame(e.frame)
            w.add("\n")
        }
        if r.ehloNotListed > 0 {
            w.add("  EHLO      ... and ")
            w.int(r.ehloNotListed)
            w.add(" more replies\n")
        }
        if r.starttls.offered || r.starttls.requested {
            w.add("  STARTTLS  offered ")
            w.add(r.starttls.offered ? "yes" : "no")
            w.add(", requested ")
            w.add(r.starttls.requested ? "yes" : "no")
            if let reply = r.starttls.reply {
                w.add(", reply ")
                w.int(reply)
                w.add(" ")
                w.frame(r.starttls.frame)
            }
            w.add("\n")
        }
        w.add("  TLS       ")
        tlsLine(r, into: &w)
        w.add("\n")
        if let auth = r.auth {
            w.add("  AUTH      ")
            w.wire(auth.mechanism)
            w.add(auth.plaintext ? " in plaintext" : " inside TLS")
            if let reply = auth.reply {
                w.add(", reply ")
                w.int(reply)
            }
            w.add(" ")
            w.frame(auth.frame)
            w.add("\n")
        }
        for m in r.messages {
            w.add("  message   ")
            w.text(m.method.rawValue)
            w.add(" ")
            w.int(m.bytes)
            w.add(" bytes")
            if m.truncated { w.add(" (cut short)") }
            w.add(", ")
            w.int(m.recipients)
            w.add(" rcpt, ")
            if let reply = m.reply {
                w.add(reply / 100 == 2 ? "accepted (" : "refused (")
                w.int(reply)
                w.add(")")
            } else {
                w.add("no final reply")
            }
            w.add(", plaintext ")
            w.frame(m.frame)
            var recipients = 0
            m.envelope.forEach { isFrom, address in
                if isFrom {
                    w.add(", from <")
                } else {
                    w.add(recipients == 0 ? " to <" : ", <")
                    recipients += 1
                }
                Escape.terminal(span: address, into: w.out)
                w.add(">")
            }
            if recipients > 0 && m.rcptNotListed > 0 {
                w.add(" and ")
                w.int(m.rcptNotListed)
                w.add(" more")
            }
            w.add("\n")
        }
        if r.messagesNotListed > 0 {
            w.add("  message   ... and ")
            w.int(r.messagesNotListed)
            w.add(" more\n")
        }
        for f in r.findings {
            w.add("  finding   ")
            w.paint("1") { $0.text(f.code.rawValue) }
            w.add(" ")
            w.frame(f.frame)
            w.add(" ")
            w.wire(f.message)
            w.add("\n")
        }
        if !r.anomalies.isEmpty {
            w.add("  anomalies")
            for (key, value) in r.anomalies.sorted(by: { $0.key < $1.key }) {
                w.add(" ")
                w.text(key.rawValue)
                w.add("=")
                w.int(value)
            }
            w.add("\n")
        }
        w.add("  verdict   ")
        w.paint(verdictColor(r.verdict)) { $0.wire(r.verdictReason) }
        w.add("\n")
        if transcript, let lines = r.transcript {
            w.add("  transcript:\n")
            for line in lines {
                w.add(line.direction == .clientToServer ? "    C: " : "    S: ")
                w.text(String(line.frame).leftPad(6))
                w.add(" ")
                w.wire(line.text)
                w.add("\n")
            }
            if r.transcriptTruncated {
                w.add("    ... transcript cut at ")
                w.int(lines.count)
                w.add(" lines\n")
            }
        }
    }

    /// The TLS line, written straight into the report.
    func tlsLine(_ r: SessionRecord, into w: inout TextWriter) {
        guard let tls = r.tls, tls.started || tls.implicit || r.starttls.reply == 220 else { return w.add("none") }
        guard tls.started else {
            w.add("no TLS handshake")
            if let problem = tls.problem {
                w.add(" (")
                w.wire(problem)
                w.add(")")
            }
            return
        }
        if tls.implicit { w.add("implicit, ") }
        if let sh = tls.serverHello {
            w.add("version=")
            w.text(TLSNames.version(sh.version))
            w.add(" cipher=")
            w.text(TLSNames.cipherSuite(sh.cipherSuite))
        } else {
            w.add("no ServerHello seen")
        }
        if let sni = tls.clientHello?.serverName {
            w.add(" sni=")
            w.wire(sni)
        }
        if let cert = tls.certificate {
            w.add(" cert=\"")
            w.wire(cert.subject)
            w.add("\" issuer=\"")
            w.wire(cert.issuer)
            w.add("\"")
            if cert.selfSigned { w.add(" self-signed") }
            w.add(" key=")
            w.text(cert.keyType)
            if cert.keyBits > 0 {
                w.add("-")
                w.int(cert.keyBits)
            }
            w.add(" sha256=")
            w.text(cert.sha256)
        } else if tls.serverHello?.version == 0x0304 {
            w.add(" (certificate encrypted in TLS 1.3)")
        }
        if let alert = tls.alert {
            w.add(" alert=")
            w.text(TLSNames.alert(alert.description))
            w.add(alert.fromServer ? " from server" : " from client")
        }
        w.add(" ")
        w.frame(tls.frame)
    }

    /// The capture summary, written into `out`.
    public func writeSummary(_ s: CaptureSummary, capture: CaptureFacts, into out: ByteSink) {
        var w = TextWriter(into: out, color: color)
        w.paint("1") { $0.add("summary") }
        w.add("\n  packets   ")
        w.int(capture.packets)
        w.add(" in ")
        let chained = capture.fileFrames.contains { $0.continues }
        for (i, file) in capture.files.enumerated() {
            if i > 0 { w.add(", ") }
            w.wire(file)
            // Files read as one capture: where each one's frames fall in its numbering.
            if chained, i < capture.fileFrames.count {
                let f = capture.fileFrames[i]
                w.text(f.lastFrame >= f.firstFrame ? " (frames \(f.firstFrame)-\(f.lastFrame)" : " (no frames")
                w.add(f.continues ? ", continues the file before)" : ")")
            }
        }
        let v = s.verdicts
        w.add("\n  sessions  ")
        w.int(s.sessions)
        w.add(": ")
        w.int(v[.encrypted] ?? 0)
        w.add(" encrypted, ")
        w.int(v[.plaintext] ?? 0)
        w.add(" plaintext, ")
        w.int(v[.stripped] ?? 0)
        w.add(" stripped, ")
        w.int(v[.inconclusive] ?? 0)
        w.add(" inconclusive\n  plaintext messages ")
        w.int(s.plaintextMessages)
        w.add("\n  findings  ")
        var any = false
        for (code, n) in s.countsByCode where n > 0 {
            if any { w.add(" ") }
            any = true
            w.text(code.rawValue)
            w.add("=")
            w.int(n)
        }
        if !any { w.add("none") }
        w.add("\n")
        if !s.byFamily.isEmpty {
            w.add("  STARTTLS offered in EHLO replies, by address family:\n")
            for (family, t) in s.byFamily.sorted(by: { $0.key < $1.key }) {
                w.text("    IPv\(family)  \(t.offered)/\(t.ehloSessions) sessions offered STARTTLS, \(t.encrypted) encrypted, \(t.stripped) stripped, \(t.plaintextMessages) plaintext message(s)\n")
            }
        }
        if !s.byServer.isEmpty {
            w.add("  by server:\n")
            for (server, t) in s.byServer.sorted(by: { $0.key < $1.key }).prefix(50) {
                w.text("    \(server)  \(t.sessions) session(s), STARTTLS offered \(t.offered)/\(t.ehloSessions), \(t.encrypted) encrypted, \(t.plaintextMessages) plaintext message(s)\n")
            }
            if s.byServer.count > 50 {
                w.add("    ... ")
                w.int(s.byServer.count - 50)
                w.add(" more servers (see --json)\n")
            }
        }
        for i in s.inconsistencies {
            let fam = { (f: Set<Int>) in f.sorted().map { "IPv\($0)" }.joined(separator: "+") }
            w.add("  ")
            w.paint("1") { $0.add("starttls-inconsistent") }
            w.add(" ")
            w.wire(i.server)
            w.text(": STARTTLS offered over \(fam(i.offeredFamilies)) (sessions \(i.offeredIn.map(String.init).joined(separator: ","))) but missing over \(fam(i.missingFamilies)) (sessions \(i.missingIn.map(String.init).joined(separator: ","))): the path, not the server, removes it\n")
        }
        let crossSession: [(StaticString, String)] = s.pathInconsistencies.map { ("path-inconsistent", $0.message) }
            + s.certificateInconsistencies.map { ("certificate-inconsistent", $0.message) }
        for (code, message) in crossSession {
            w.add("  ")
            w.paint("1") { $0.add(code) }
            w.add(" ")
            w.wire(message)
            w.add("\n")
        }
        if let seen = CaptureExplanation.notSMTP(capture, sessions: s.sessions) {
            w.add("  ")
            w.paint("1") { $0.add("not SMTP") }
            w.add("  ")
            w.text(seen)
            w.add("\n")
        }
        let notes = Self.captureNotes(capture)
        if !notes.isEmpty {
            w.add("  capture   ")
            w.text(notes.joined(separator: "; "))
            w.add("\n")
        }
    }

    /// What the summary says about the capture itself: limits reached, damage, drops.
    static func captureNotes(_ capture: CaptureFacts) -> [String] {
        let r = capture.reassembly
        var notes: [String] = []
        if r.evicted > 0 { notes.append("\(r.evicted) connection(s) evicted (table full)") }
        if r.evictedForMemory > 0 { notes.append("\(r.evictedForMemory) connection(s) evicted (buffers over the memory budget)") }
        if r.expired > 0 { notes.append("\(r.expired) idle connection(s) expired") }
        if r.resumed > 0 { notes.append("\(r.resumed) connection(s) resumed after an idle pause") }
        if r.heldOverflows > 0 { notes.append("\(r.heldOverflows) out-of-order buffer overflow(s)") }
        if r.outOfWindow > 0 { notes.append("\(r.outOfWindow) segment(s) far out of window dropped") }
        let d = capture.defragment
        if d.fragments > 0 {
            var parts = ["\(d.reassembled) datagram(s) reassembled"]
            if d.leftOver > 0 { parts.append("\(d.leftOver) never completed") }
            if d.conflictingOverlaps > 0 { parts.append("\(d.conflictingOverlaps) overlap(s) with other bytes (first copy kept)") }
            if d.dropped > 0 { parts.append("\(d.dropped) datagram(s) dropped (caps or snap length)") }
            notes.append("\(d.fragments) IP fragment(s): " + parts.joined(separator: ", "))
        }
        if capture.tunnelled > 0 { notes.append("\(capture.tunnelled) packet(s) decoded inside tunnels") }
        if capture.tunnelsOverLimit > 0 {
            notes.append("\(capture.tunnelsOverLimit) packet(s) in more distinct tunnels than are tracked at once (their sessions are marked too-many-tunnels)")
        }
        if capture.malformed > 0 { notes.append("\(capture.malformed) malformed packet(s)") }
        if capture.truncatedFile { notes.append("the capture file is truncated") }
        if let d = capture.drops {
            notes.append("kernel: \(d.received) received, \(d.dropped) dropped, \(d.interfaceDropped) dropped by the interface")
        }
        return notes
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
