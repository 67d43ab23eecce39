import PacketDecoding
import SMTPAnalysis
import TCPReassembly

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

    func verdictColor(_ v: Verdict) -> String {
        switch v {
        case .encrypted: return "32"
        case .plaintext: return "31;1"
        case .stripped: return "35;1"
        case .inconclusive: return "33"
        }
    }

    func frame(_ f: UInt64?) -> String { f.map { "[frame \($0)]" } ?? "" }

    public func session(_ r: SessionRecord, file: String?) -> String {
        var out = ""
        let family = r.ipVersion == 6 ? "IPv6" : "IPv4"
        let time = r.start.iso8601.replacingOccurrences(of: "T", with: " ").dropLast() + " UTC"
        out += paint("session \(r.id)", "1") + "  \(time)  \(r.client.description) -> \(r.server.description)  \(family)"
        if let file { out += "  (\(Escape.terminal(file)))" }
        out += "\n"
        var facts: [String] = ["frame \(r.firstFrame)", "\(r.clientStats.bytes)/\(r.serverStats.bytes) bytes"]
        if !r.handshakeSeen { facts.append("capture starts mid-session") }
        if r.gaps > 0 { facts.append("\(r.gaps) gap(s)") }
        if let reason = r.closeReason { facts.append("ended: \(reason.rawValue)") }
        out += "  capture   \(facts.joined(separator: ", "))\n"
        if let banner = r.banner {
            out += "  banner    \(r.bannerCode.map(String.init) ?? "") \(Escape.terminal(banner))\n"
        }
        if let name = r.heloName {
            out += "  client    \(r.greeting ?? "greeting") \(Escape.terminal(name))\n"
        }
        for e in r.ehlo {
            if e.code / 100 == 2 {
                let words = e.keywords.map { Escape.terminal($0.split(separator: " ").first.map(String.init) ?? "") }
                let tag = e.starttls ? "STARTTLS offered" : e.complete ? paint("no STARTTLS", "31") : "no STARTTLS seen; the reply was cut by the capture"
                out += "  EHLO      \(e.code): \(words.joined(separator: " "))  (\(tag)) \(frame(e.frame))\n"
            } else {
                out += "  EHLO      rejected with \(e.code) \(frame(e.frame))\n"
            }
        }
        if r.starttls.offered || r.starttls.requested {
            var s = "offered \(r.starttls.offered ? "yes" : "no"), requested \(r.starttls.requested ? "yes" : "no")"
            if let reply = r.starttls.reply { s += ", reply \(reply) \(frame(r.starttls.frame))" }
            out += "  STARTTLS  \(s)\n"
        }
        out += "  TLS       \(tlsLine(r))\n"
        if let auth = r.auth {
            out += "  AUTH      \(Escape.terminal(auth.mechanism))\(auth.plaintext ? " in plaintext" : " inside TLS")\(auth.reply.map { ", reply \($0)" } ?? "") \(frame(auth.frame))\n"
        }
        for m in r.messages {
            let reply = m.reply.map { $0 / 100 == 2 ? "accepted (\($0))" : "refused (\($0))" } ?? "no final reply"
            out += "  message   \(m.method.rawValue) \(m.bytes) bytes\(m.truncated ? " (cut short)" : ""), \(m.recipients) rcpt, \(reply), plaintext \(frame(m.frame))\n"
        }
        if r.messagesNotListed > 0 { out += "  message   ... and \(r.messagesNotListed) more\n" }
        for f in r.findings {
            out += "  finding   \(paint(f.code.rawValue, "1")) \(frame(f.frame)) \(Escape.terminal(f.message))\n"
        }
        if !r.anomalies.isEmpty {
            out += "  anomalies \(r.anomalies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " "))\n"
        }
        out += "  verdict   " + paint(Escape.terminal(r.verdictReason), verdictColor(r.verdict)) + "\n"
        if transcript, let lines = r.transcript {
            out += "  transcript:\n"
            for line in lines {
                out += "    \(line.direction == .clientToServer ? "C:" : "S:") \(String(line.frame).leftPad(6)) \(Escape.terminal(line.text))\n"
            }
            if r.transcriptTruncated { out += "    ... transcript cut at \(lines.count) lines\n" }
        }
        return out
    }

    func tlsLine(_ r: SessionRecord) -> String {
        guard let tls = r.tls, tls.started || tls.implicit || r.starttls.reply == 220 else { return "none" }
        guard tls.started else { return "no TLS handshake\(tls.problem.map { " (\(Escape.terminal($0)))" } ?? "")" }
        var parts: [String] = []
        if let sh = tls.serverHello {
            parts.append("version=\(TLSNames.version(sh.version)) cipher=\(TLSNames.cipherSuite(sh.cipherSuite))")
        } else {
            parts.append("no ServerHello seen")
        }
        if let sni = tls.clientHello?.serverName { parts.append("sni=\(Escape.terminal(sni))") }
        if let cert = tls.certificate {
            parts.append("cert=\"\(Escape.terminal(cert.subject))\" issuer=\"\(Escape.terminal(cert.issuer))\"\(cert.selfSigned ? " self-signed" : "")")
        } else if tls.serverHello?.version == 0x0304 {
            parts.append("(certificate encrypted in TLS 1.3)")
        }
        if let alert = tls.alert { parts.append("alert=\(TLSNames.alert(alert.description)) from \(alert.fromServer ? "server" : "client")") }
        return (tls.implicit ? "implicit, " : "") + parts.joined(separator: " ") + " \(frame(tls.frame))"
    }

    public func summary(_ s: CaptureSummary, capture: CaptureFacts) -> String {
        var out = paint("summary", "1") + "\n"
        out += "  packets   \(capture.packets) in \(capture.files.map(Escape.terminal).joined(separator: ", "))\n"
        let v = s.verdicts
        out += "  sessions  \(s.sessions): \(v[.encrypted] ?? 0) encrypted, \(v[.plaintext] ?? 0) plaintext, \(v[.stripped] ?? 0) stripped, \(v[.inconclusive] ?? 0) inconclusive\n"
        out += "  plaintext messages \(s.plaintextMessages)\n"
        var codes: [String] = []
        for code in FindingCode.allCases {
            let n = code == .starttlsInconsistent ? s.inconsistencies.count : (s.findings[code] ?? 0)
            if n > 0 { codes.append("\(code.rawValue)=\(n)") }
        }
        out += "  findings  \(codes.isEmpty ? "none" : codes.joined(separator: " "))\n"
        if !s.byFamily.isEmpty {
            out += "  STARTTLS offered in EHLO replies, by address family:\n"
            for (family, t) in s.byFamily.sorted(by: { $0.key < $1.key }) {
                out += "    IPv\(family)  \(t.offered)/\(t.ehloSessions) sessions offered STARTTLS, \(t.encrypted) encrypted, \(t.stripped) stripped, \(t.plaintextMessages) plaintext message(s)\n"
            }
        }
        if !s.byServer.isEmpty {
            out += "  by server:\n"
            for (server, t) in s.byServer.sorted(by: { $0.key < $1.key }).prefix(50) {
                out += "    \(server.leftPad(0))  \(t.sessions) session(s), STARTTLS offered \(t.offered)/\(t.ehloSessions), \(t.encrypted) encrypted, \(t.plaintextMessages) plaintext message(s)\n"
            }
            if s.byServer.count > 50 { out += "    ... \(s.byServer.count - 50) more servers (see --json)\n" }
        }
        for i in s.inconsistencies {
            let fam = { (f: Set<Int>) in f.sorted().map { "IPv\($0)" }.joined(separator: "+") }
            out += "  " + paint("starttls-inconsistent", "1")
                + " \(Escape.terminal(i.server)): STARTTLS offered over \(fam(i.offeredFamilies)) (sessions \(i.offeredIn.map(String.init).joined(separator: ","))) but missing over \(fam(i.missingFamilies)) (sessions \(i.missingIn.map(String.init).joined(separator: ","))): the path, not the server, removes it\n"
        }
        let r = capture.reassembly
        var notes: [String] = []
        if r.evicted > 0 { notes.append("\(r.evicted) connection(s) evicted (table full)") }
        if r.expired > 0 { notes.append("\(r.expired) idle connection(s) expired") }
        if r.heldOverflows > 0 { notes.append("\(r.heldOverflows) out-of-order buffer overflow(s)") }
        if r.outOfWindow > 0 { notes.append("\(r.outOfWindow) segment(s) far out of window dropped") }
        if capture.fragments > 0 { notes.append("\(capture.fragments) IP fragment(s) not reassembled") }
        if capture.malformed > 0 { notes.append("\(capture.malformed) malformed packet(s)") }
        if capture.truncatedFile { notes.append("the capture file is truncated") }
        if let d = capture.drops {
            notes.append("kernel: \(d.received) received, \(d.dropped) dropped, \(d.interfaceDropped) dropped by the interface")
        }
        if !notes.isEmpty { out += "  capture   \(notes.joined(separator: "; "))\n" }
        return out
    }
}

extension String {
    func leftPad(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }

    func replacingOccurrences(of target: Character, with replacement: Character) -> String {
        String(map { $0 == target ? replacement : $0 })
    }
}
