import Findings
import SMTPCapCore
import SMTPMachine
import TCPReassembly
import TLSHandshake

/// Suricata's EVE JSON lines, so tools that read eve.json take smtpcap's results without a new
/// parser: per session an `smtp` event per message (one with the HELO name when there was no
/// message), a `tls` event when TLS started, and an `alert` per finding; at the end an alert
/// per cross-session finding and a `stats` event. Every line carries the flow's fields
/// (timestamp, flow_id, community_id, addresses, ports, proto, app_proto) and keeps to
/// Suricata's EVE schema (its objects are closed: smtpcap's own facts go in the alert's
/// metadata).
public struct EVEReport {
    /// The flow fields of a session, kept for the cross-session alerts at the end.
    struct Flow {
        var identity: FlowIdentity
        var client: Endpoint
        var server: Endpoint
        var start: Timestamp
        var interface: String?
        var serverName: String?
        var uid: String { identity.uid }

        init(_ r: SessionRecord) {
            identity = FlowIdentity(r)
            client = r.client
            server = r.server
            start = r.start
            interface = r.interface
            serverName = r.serverName
        }
    }

    let addresses: Bool
    /// Every session's flow by its id (ids start again in each file of a multi-file run: a
    /// list), for the cross-session alerts; bounded.
    var flows: [UInt64: [Flow]] = [:]
    var flowsKept = 0
    static let maxFlowsKept = 100_000
    /// The capture's span as its sessions show it, for the stats event.
    var first: Timestamp?
    var last = Timestamp.zero
    /// Cross-session alerts whose session was past the bound (written without a flow).
    public private(set) var alertsWithoutFlow = 0

    public init(addresses: Bool) {
        self.addresses = addresses
    }

    /// Every session, printed or not (`-q`): its flow and times.
    public mutating func note(_ r: SessionRecord) {
        if first == nil || r.start < first! { first = r.start }
        if last < r.end { last = r.end }
        guard flowsKept < Self.maxFlowsKept else { return }
        flows[r.id, default: []].append(Flow(r))
        flowsKept += 1
    }

    /// The flow of session `id` to `server` (the name a cross-session finding gives).
    func flow(_ id: UInt64, server: String) -> Flow? {
        guard let candidates = flows[id] else { return nil }
        return candidates.first { f in f.serverName.map { server.hasPrefix($0) } ?? false } ?? candidates.first
    }

    /// The session's lines, each ending in a newline.
    public mutating func writeSession(_ r: SessionRecord, into out: ByteSink) {
        let flow = Flow(r)
        let messages = r.messages.isEmpty ? [nil] : r.messages.map(Optional.some)
        for (tx, message) in messages.enumerated() {
            var o = Self.header(flow, "smtp", time: r.start, into: out)
            o.int("tx_id", tx)
            o.object("smtp") { s in
                if let helo = r.heloName { s.string("helo", helo) }
                if addresses, let message {
                    if let from = message.mailFrom { s.string("mail_from", "<" + from + ">") }
                    let recipients = message.rcptTo
                    if !recipients.isEmpty { s.strings("rcpt_to", recipients.map { "<" + $0 + ">" }) }
                }
            }
            out.append(0x7d, 0x0a)
        }
        if let tls = r.tls, tls.started || tls.implicit {
            var o = Self.header(flow, "tls", time: r.start, into: out)
            o.object("tls") { t in Self.tlsObject(tls, implicit: tls.implicit, into: &t) }
            out.append(0x7d, 0x0a)
        }
        for finding in r.findings {
            writeAlert(flow, code: finding.code, message: finding.message, verdict: r.verdict, frame: finding.frame, into: out)
        }
    }

    /// Alerts for what the summary found across sessions, then the stats event.
    public mutating func writeEnd(_ s: CaptureSummary, capture: CaptureFacts, into out: ByteSink) {
        for i in s.inconsistencies {
            let message = "\(i.server): STARTTLS offered in sessions \(i.offeredIn.map(String.init).joined(separator: ",")) but missing in \(i.missingIn.map(String.init).joined(separator: ","))"
            crossSessionAlert(i.missingIn.first.flatMap { flow($0, server: i.server) }, .starttlsInconsistent, message, into: out)
        }
        for p in s.pathInconsistencies {
            crossSessionAlert(flow(p.without.session, server: p.server), .pathInconsistent, "\(p.server): \(p.message)", into: out)
        }
        for c in s.certificateInconsistencies {
            crossSessionAlert(flow(c.second.session, server: c.server), .certificateInconsistent, c.message, into: out)
        }
        var o = JSONObject(into: out)
        o.custom("timestamp") { Self.appendTime(last, into: $0) }
        o.string("event_type", "stats")
        o.object("stats") { st in
            st.int("uptime", max(0, last.seconds - (first ?? last).seconds))
            st.object("decoder") { $0.int("pkts", capture.packets) }
            st.object("tcp") { $0.int("sessions", capture.reassembly.connections) }
            st.object("app_layer") { a in a.object("flow") { $0.int("smtp", s.sessions) } }
        }
        out.append(0x7d, 0x0a)
    }

    /// An alert for a finding across sessions, on the flow of a session it names; without
    /// flow fields when that session was past the bound.
    mutating func crossSessionAlert(_ flow: Flow?, _ code: FindingCode, _ message: String, into out: ByteSink) {
        if flow == nil { alertsWithoutFlow += 1 }
        writeAlert(flow, code: code, message: message, verdict: nil, frame: nil, into: out)
    }

    func writeAlert(_ flow: Flow?, code: FindingCode, message: String, verdict: Verdict?, frame: UInt64?, into out: ByteSink) {
        let rule = EVESignatures.rule(code)
        var o: JSONObject
        if let flow {
            o = Self.header(flow, "alert", time: flow.start, into: out)
            o.string("direction", "to_server")
        } else {
            o = JSONObject(into: out)
            o.custom("timestamp") { Self.appendTime(last, into: $0) }
            o.string("event_type", "alert")
            o.string("proto", "TCP")
            o.string("app_proto", "smtp")
        }
        o.object("alert") { a in
            a.string("action", "allowed")
            a.int("gid", 1)
            a.int("signature_id", rule.id)
            a.int("rev", 1)
            a.string("signature", "SMTPCAP " + rule.title)
            a.string("category", rule.category)
            a.int("severity", rule.severity)
            a.object("metadata") { m in
                m.strings("smtpcap_code", [code.rawValue])
                m.strings("smtpcap_message", [message])
                if let flow { m.strings("smtpcap_uid", [flow.uid]) }
                if let verdict { m.strings("smtpcap_verdict", [verdict.rawValue]) }
                if let frame { m.strings("smtpcap_frame", [String(frame)]) }
            }
        }
        out.append(0x7d, 0x0a)
    }

    /// The flow fields every event carries; the object is left open for the event's own.
    static func header(_ flow: Flow, _ type: StaticString, time: Timestamp, into out: ByteSink) -> JSONObject {
        var o = JSONObject(into: out)
        o.custom("timestamp") { appendTime(time, into: $0) }
        o.int("flow_id", flow.identity.flowID)
        if let interface = flow.interface { o.string("in_iface", interface) }
        o.string("event_type", String(describing: type))
        o.string("src_ip", flow.client.address.description)
        o.int("src_port", flow.client.port)
        o.string("dest_ip", flow.server.address.description)
        o.int("dest_port", flow.server.port)
        o.int("ip_v", flow.client.address.version)
        o.string("proto", "TCP")
        o.string("app_proto", "smtp")
        o.string("community_id", flow.identity.communityID)
        return o
    }

    static func tlsObject(_ tls: TLSFacts, implicit: Bool, into t: inout JSONObject) {
        if let cert = tls.certificate {
            t.string("subject", cert.subject)
            t.string("issuerdn", cert.issuer)
            if !cert.subjectAlternativeNames.isEmpty { t.strings("subjectaltname", cert.subjectAlternativeNames) }
            t.string("notbefore", certificateTime(cert.notBefore))
            t.string("notafter", certificateTime(cert.notAfter))
        }
        if let sni = tls.clientHello?.serverName { t.string("sni", sni) }
        if let sh = tls.serverHello { t.string("version", eveVersion(sh.version)) }
        if let alpn = tls.clientHello?.alpn, !alpn.isEmpty { t.strings("client_alpns", alpn) }
        if !implicit { t.string("from_proto", "smtp") }
    }

    /// Suricata's version names: `TLS 1.2`, `SSLv3`.
    static func eveVersion(_ v: UInt16) -> String {
        switch v {
        case 0x0300: "SSLv3"
        case 0x0301: "TLS 1.0"
        case 0x0302: "TLS 1.1"
        case 0x0303: "TLS 1.2"
        case 0x0304: "TLS 1.3"
        default: "UNDETERMINED"
        }
    }

    /// `2024-01-02T03:04:05` (the schema's form for certificate times: no fraction, no zone).
    static func certificateTime(_ seconds: Int64) -> String {
        let iso = Timestamp(seconds: seconds, nanoseconds: 0).iso8601
        guard let dot = iso.firstIndex(of: ".") else { return iso }
        return String(iso[..<dot])
    }

    /// `"2024-01-02T03:04:05.123456+0000"`, Suricata's time stamp form.
    static func appendTime(_ t: Timestamp, into out: ByteSink) {
        out.append(0x22)
        t.appendISO8601(into: out)
        out.removeLast(1)  // the Z
        out.append("+0000\"")
    }
}

/// A stable signature id, title, category and severity per finding code (ids never change
/// meaning; a new code takes a new id).
public enum EVESignatures {
    public struct Rule: Sendable {
        public var id: Int
        public var title: String
        public var category: String
        public var severity: Int
    }

    static let privacy = "Potential Corporate Privacy Violation"
    static let bad = "Potentially Bad Traffic"
    static let misc = "Misc activity"

    public static func rule(_ code: FindingCode) -> Rule {
        switch code {
        case .starttlsMissing: Rule(id: 9_250_001, title: "STARTTLS not offered in EHLO reply", category: privacy, severity: 2)
        case .plaintextData: Rule(id: 9_250_002, title: "message sent in plaintext", category: privacy, severity: 2)
        case .starttlsStripped: Rule(id: 9_250_003, title: "STARTTLS stripped on the path", category: bad, severity: 1)
        case .bannerMasked: Rule(id: 9_250_004, title: "SMTP banner masked", category: bad, severity: 2)
        case .starttlsInconsistent: Rule(id: 9_250_005, title: "STARTTLS offered on one path and missing on another", category: bad, severity: 1)
        case .serverTTLChanged: Rule(id: 9_250_006, title: "server TTL changed within the session", category: bad, severity: 2)
        case .pathInconsistent: Rule(id: 9_250_007, title: "sessions without STARTTLS answered from another path", category: bad, severity: 1)
        case .certificateInconsistent: Rule(id: 9_250_008, title: "server certificate differs between paths", category: bad, severity: 1)
        case .plaintextAuth: Rule(id: 9_250_009, title: "AUTH in plaintext", category: privacy, severity: 1)
        case .starttlsRefused: Rule(id: 9_250_010, title: "STARTTLS refused", category: privacy, severity: 2)
        case .starttlsUnused: Rule(id: 9_250_011, title: "STARTTLS offered but not used", category: privacy, severity: 2)
        case .starttlsCommandInjection: Rule(id: 9_250_012, title: "plaintext command injected after STARTTLS", category: bad, severity: 1)
        case .starttlsResponseInjection: Rule(id: 9_250_013, title: "plaintext response injected after STARTTLS", category: bad, severity: 1)
        case .tlsNotStarted: Rule(id: 9_250_014, title: "TLS not started after STARTTLS", category: misc, severity: 3)
        case .ehloRejected: Rule(id: 9_250_015, title: "EHLO rejected", category: misc, severity: 3)
        case .captureGap: Rule(id: 9_250_016, title: "capture gap", category: misc, severity: 3)
        case .weakTLS: Rule(id: 9_250_017, title: "weak TLS version or cipher", category: privacy, severity: 2)
        case .tlsFailed: Rule(id: 9_250_018, title: "TLS handshake failed", category: bad, severity: 2)
        case .certificateExpired: Rule(id: 9_250_019, title: "server certificate expired", category: bad, severity: 2)
        case .certificateSelfSigned: Rule(id: 9_250_020, title: "server certificate self-signed", category: misc, severity: 3)
        case .protocolAnomaly: Rule(id: 9_250_021, title: "SMTP protocol anomaly", category: misc, severity: 3)
        }
    }
}
