import Findings
import SMTPCapCore
import SMTPMachine
import TCPReassembly
import TLSHandshake

/// A tiny JSON object writer: keys in insertion order, ASCII output, bytes written straight
/// into a sink (the output's buffer for session lines), no Foundation.
public struct JSONObject {
    public let out: ByteSink
    private var first = true
    /// Where this object's opening brace is in `out`.
    private let start: Int

    /// An object in a sink of its own (`closed` gives its text).
    public init() {
        self.init(into: ByteSink(capacity: 512))
    }

    /// An object written into `out`, opening brace now; the caller closes it.
    public init(into out: ByteSink) {
        self.out = out
        start = out.count
        out.append(0x7b)
    }

    /// `,"k":` with one capacity check.
    @inline(__always)
    private mutating func key(_ k: StaticString) {
        out.appendKey(k, first: first)
        first = false
    }

    public mutating func string(_ k: StaticString, _ v: String?) {
        key(k)
        if let v { Escape.json(v, into: out) } else { out.append("null") }
    }
    public mutating func int<T: BinaryInteger>(_ k: StaticString, _ v: T?) {
        key(k)
        guard let v else { return out.append("null") }
        out.appendDecimal(Int64(v))
    }
    public mutating func bool(_ k: StaticString, _ v: Bool?) {
        key(k)
        switch v {
        case .some(true): out.append("true")
        case .some(false): out.append("false")
        case .none: out.append("null")
        }
    }
    /// A string smtpcap made itself, known to need no escaping (ids, codes).
    public mutating func plain(_ k: StaticString, _ v: String) {
        key(k)
        out.append(0x22)
        out.append(utf8: v)
        out.append(0x22)
    }
    /// JSON text made by smtpcap itself.
    public mutating func raw(_ k: StaticString, _ json: StaticString) {
        key(k)
        out.append(json)
    }
    public mutating func rawText(_ k: StaticString, _ json: String) {
        key(k)
        out.append(utf8: json)
    }
    /// A value written by `body` straight into the buffer (JSON text made by smtpcap itself).
    public mutating func custom(_ k: StaticString, _ body: (ByteSink) -> Void) {
        key(k)
        body(out)
    }
    /// A key whose name is not a literal (anomaly names, server keys); escaped.
    public mutating func int(dynamicKey k: String, _ v: Int) {
        if !first { out.append(0x2c) }
        first = false
        Escape.json(k, into: out)
        out.append(0x3a)
        out.appendDecimal(Int64(v))
    }
    public mutating func object(_ k: StaticString, _ build: (inout JSONObject) -> Void) {
        key(k)
        var o = JSONObject(into: out)
        build(&o)
        out.append(0x7d)
    }
    /// A timestamp as an ISO 8601 string, written straight into the buffer.
    public mutating func timestamp(_ k: StaticString, _ t: Timestamp) {
        key(k)
        out.append(0x22)
        t.appendISO8601(into: out)
        out.append(0x22)
    }
    /// An endpoint as `address:port` (`[v6]:port`), written straight into the buffer.
    public mutating func endpoint(_ k: StaticString, _ e: Endpoint) {
        key(k)
        out.append(0x22)
        e.append(into: out)
        out.append(0x22)
    }
    /// An array of strings, escaped straight into the buffer.
    public mutating func strings(_ k: StaticString, _ items: [String]) {
        key(k)
        out.append(0x5b)
        var first = true
        for item in items {
            if !first { out.append(0x2c) }
            first = false
            Escape.json(item, into: out)
        }
        out.append(0x5d)
    }

    /// An array of objects, each built straight into the buffer.
    public mutating func objects<T>(_ k: StaticString, _ items: [T], _ build: (T, inout JSONObject) -> Void) {
        key(k)
        out.append(0x5b)
        for i in items.indices {
            if i > 0 { out.append(0x2c) }
            var o = JSONObject(into: out)
            build(items[i], &o)
            out.append(0x7d)
        }
        out.append(0x5d)
    }

    /// Closes the object and gives its text (its own bytes, also in a shared sink).
    public var closed: String {
        out.append(0x7d)
        defer { out.removeLast(1) }
        return out.string(from: start)
    }

    public static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }
    public static func strings(_ items: [String]) -> String {
        let sink = ByteSink(capacity: 64)
        sink.append(0x5b)
        for (i, item) in items.enumerated() {
            if i > 0 { sink.append(0x2c) }
            Escape.json(item, into: sink)
        }
        sink.append(0x5d)
        return sink.string(from: 0)
    }
}

/// One JSON object per session and one summary line: the machine-readable report. Field names
/// are stable; downstream tools parse them.
public enum JSONLinesReport {
    public static func session(_ r: SessionRecord, file: String?) -> String {
        let sink = ByteSink(capacity: 2048)
        writeSession(r, file: file, into: sink)
        sink.removeLast(1)
        return withExtendedLifetime(sink) { String(decoding: sink.bytes, as: UTF8.self) }
    }

    /// The session line, newline included, written into `out` (the output's buffer).
    public static func writeSession(_ r: SessionRecord, file: String?, into out: ByteSink) {
        var o = JSONObject(into: out)
        sessionBody(r, file: file, into: &o)
        out.append(0x7d, 0x0a)
    }

    static func sessionBody(_ r: SessionRecord, file: String?, into o: inout JSONObject) {
        o.string("type", "session")
        o.int("id", r.id)
        let identity = FlowIdentity(r)
        o.custom("uid") { s in
            s.append(0x22)
            identity.appendUID(into: s)
            s.append(0x22)
        }
        o.custom("community_id") { s in
            s.append(0x22)
            identity.appendCommunityID(into: s)
            s.append(0x22)
        }
        if let file { o.string("file", file) }
        o.endpoint("client", r.client)
        o.endpoint("server", r.server)
        o.int("ip_version", r.ipVersion)
        o.string("interface", r.interface)
        if r.tunnel.isEmpty {
            o.raw("tunnel", "null")
        } else {
            o.rawText("tunnel", JSONObject.array(r.tunnel.map { layer in
                var x = JSONObject()
                x.string("type", layer.kind.name)
                if layer.hasID, let name = layer.kind.idName { x.int(dynamicKey: name, Int(layer.id)) }
                if let outer = layer.outerText { x.string("outer", outer) }
                return x.closed
            }))
        }
        if let pause = r.resumedAfterIdleSeconds { o.int("resumed_after_idle", pause) }
        if let probe = r.probe {
            o.object("probe") { p in
                p.string("target", probe.target)
                p.string("address", probe.address)
                p.string("mx", probe.mx)
                p.int("preference", probe.preference)
            }
        }
        let path = PathEvidence(r)
        if path.serverTTL != nil || path.clientTTL != nil {
            o.object("path") { pathObject(path, into: &$0) }
        } else {
            o.raw("path", "null")
        }
        o.timestamp("start", r.start)
        o.timestamp("end", r.end)
        o.int("first_frame", r.firstFrame)
        o.int("bytes_client", r.clientStats.bytes)
        o.int("bytes_server", r.serverStats.bytes)
        o.int("gaps", r.gaps)
        o.int("lost_bytes", r.clientStats.lostBytes + r.serverStats.lostBytes)
        o.bool("handshake_seen", r.handshakeSeen)
        o.string("server_evidence", r.serverEvidence.rawValue)
        o.string("close", r.closeReason?.rawValue)
        o.string("banner", r.banner)
        o.string("server_name", r.serverName)
        o.string("provider", r.provider)
        o.string("greeting", r.greeting)
        o.string("helo", r.heloName)
        o.objects("ehlo", r.ehlo) { e, x in
            x.int("frame", e.frame)
            x.int("code", e.code)
            x.strings("keywords", e.keywords)
            x.bool("starttls", e.starttls)
            x.bool("complete", e.complete)
            if !e.maskedKeywords.isEmpty { x.strings("masked", e.maskedKeywords) }
        }
        if r.ehloNotListed > 0 { o.int("ehlo_not_listed", r.ehloNotListed) }
        // Closures capture only small values: capturing the record copied it whole.
        let starttls = r.starttls
        o.object("starttls") { s in
            s.bool("offered", starttls.offered)
            s.bool("requested", starttls.requested)
            s.int("reply", starttls.reply)
            s.int("frame", starttls.frame)
        }
        if let tls = r.tls, tls.started || tls.implicit || r.starttls.reply == 220 {
            o.object("tls") { tlsObject(tls, into: &$0) }
        } else {
            o.raw("tls", "null")
        }
        if let auth = r.auth {
            o.object("auth") { a in
                a.string("mechanism", auth.mechanism)
                a.bool("plaintext", auth.plaintext)
                a.int("frame", auth.frame)
                a.int("reply", auth.reply)
            }
        } else {
            o.raw("auth", "null")
        }
        o.objects("messages", r.messages) { m, x in
            x.string("method", m.method.rawValue)
            x.int("frame", m.frame)
            x.int("bytes", m.bytes)
            x.int("rcpt_count", m.recipients)
            x.int("reply", m.reply)
            x.bool("encrypted", false)
            if m.truncated { x.bool("truncated", true) }
            if m.method == .bdat { x.int("chunks", m.chunks) }
            // Straight from the packed addresses, without making strings.
            let envelope = m.envelope
            x.custom("mail_from") { out in
                var written = false
                envelope.forEach { isFrom, address in
                    if isFrom {
                        Escape.json(span: address, into: out)
                        written = true
                    }
                }
                if !written { out.append("null") }
            }
            x.custom("rcpt_to") { out in
                out.append(0x5b)
                var n = 0
                envelope.forEach { isFrom, address in
                    guard !isFrom else { return }
                    if n > 0 { out.append(0x2c) }
                    Escape.json(span: address, into: out)
                    n += 1
                }
                out.append(0x5d)
            }
            if m.rcptNotListed > 0 { x.int("rcpt_not_listed", m.rcptNotListed) }
        }
        if r.messagesNotListed > 0 { o.int("messages_not_listed", r.messagesNotListed) }
        o.int("commands", r.commands)
        o.bool("complete", r.complete)
        o.string("verdict", r.verdict.rawValue)
        o.string("verdict_reason", r.verdictReason)
        o.objects("findings", r.findings) { f, x in
            x.string("code", f.code.rawValue)
            x.int("frame", f.frame)
            x.string("message", f.message)
        }
        if !r.anomalies.isEmpty {
            let anomalies = r.anomalies.sorted(by: { $0.key < $1.key })
            o.object("anomalies") { a in
                for (k, v) in anomalies { a.int(dynamicKey: k.rawValue, v) }
            }
        }
        if let transcript = r.transcript {
            o.objects("transcript", transcript) { line, x in
                x.string("dir", line.direction == .clientToServer ? "C" : "S")
                x.int("frame", line.frame)
                x.string("text", line.text)
            }
        }
    }

    static func tlsObject(_ tls: TLSFacts, into t: inout JSONObject) {
        t.bool("started", tls.started)
        t.int("frame", tls.frame)
        t.bool("implicit", tls.implicit)
        if let sh = tls.serverHello {
            t.string("version", TLSNames.version(sh.version))
            t.string("cipher", TLSNames.cipherSuite(sh.cipherSuite))
            t.string("cipher_code", TLSNames.hex(sh.cipherSuite))
            t.bool("hello_retry_request", sh.helloRetryRequest)
        } else {
            t.raw("version", "null")
            t.raw("cipher", "null")
            t.raw("cipher_code", "null")
        }
        if let ch = tls.clientHello {
            t.string("sni", ch.serverName)
            t.strings("alpn", ch.alpn)
            t.strings("client_versions", (ch.supportedVersions.isEmpty ? [ch.legacyVersion] : ch.supportedVersions).map(TLSNames.version))
            t.int("client_cipher_suites", ch.cipherSuiteCount)
        } else {
            t.raw("sni", "null")
            t.raw("alpn", "[]")
        }
        if let cert = tls.certificate {
            t.object("certificate") { c in
                c.string("subject", cert.subject)
                c.string("issuer", cert.issuer)
                c.strings("san", cert.subjectAlternativeNames)
                c.timestamp("not_before", Timestamp(seconds: cert.notBefore, nanoseconds: 0))
                c.timestamp("not_after", Timestamp(seconds: cert.notAfter, nanoseconds: 0))
                c.bool("self_signed", cert.selfSigned)
                c.int("chain_length", cert.chainLength)
                c.string("sha256", cert.sha256)
                c.string("key_type", cert.keyType)
                c.int("key_bits", cert.keyBits)
            }
        } else {
            t.raw("certificate", "null")
            if tls.serverHello?.version == 0x0304 {
                t.string("certificate_note", "encrypted in TLS 1.3")
            } else if let problem = tls.certificateProblem {
                t.string("certificate_note", problem)
            }
        }
        if let alert = tls.alert {
            t.object("alert") { a in
                a.string("description", TLSNames.alert(alert.description))
                a.int("level", alert.level)
                a.string("from", alert.fromServer ? "server" : "client")
                a.int("frame", alert.frame)
            }
        } else {
            t.raw("alert", "null")
        }
        t.string("problem", tls.problem)
    }

    static func tally(_ t: OfferTally) -> (inout JSONObject) -> Void {
        { o in
            o.int("sessions", t.sessions)
            o.int("ehlo_sessions", t.ehloSessions)
            o.int("starttls_offered", t.offered)
            o.int("stripped", t.stripped)
            o.int("encrypted", t.encrypted)
            o.int("plaintext_messages", t.plaintextMessages)
        }
    }

    public static func summary(_ s: CaptureSummary, capture: CaptureFacts) -> String {
        var o = JSONObject()
        o.string("type", "summary")
        o.rawText("files", JSONObject.strings(capture.files))
        o.int("packets", capture.packets)
        o.int("sessions", s.sessions)
        var v = JSONObject()
        for verdict in Verdict.allCases { v.int(dynamicKey: verdict.rawValue, s.verdicts[verdict] ?? 0) }
        o.rawText("verdicts", v.closed)
        o.int("plaintext_messages", s.plaintextMessages)
        var f = JSONObject()
        for (code, n) in s.countsByCode where n > 0 { f.int(dynamicKey: code.rawValue, n) }
        o.rawText("findings", f.closed)
        o.int("total_findings", s.totalFindings)
        o.rawText("by_server", JSONObject.array(s.byServer.sorted { $0.key < $1.key }.map { key, t in
            var x = JSONObject()
            x.string("server", key)
            tally(t)(&x)
            return x.closed
        }))
        var fam = JSONObject()
        for (family, t) in s.byFamily.sorted(by: { $0.key < $1.key }) {
            var x = JSONObject()
            tally(t)(&x)
            fam.rawText(family == 6 ? "ipv6" : "ipv4", x.closed)
        }
        o.rawText("by_family", fam.closed)
        o.rawText("starttls_inconsistent", JSONObject.array(s.inconsistencies.map { i in
            var x = JSONObject()
            x.string("server", i.server)
            x.rawText("offered_in", "[" + i.offeredIn.map(String.init).joined(separator: ",") + "]")
            x.rawText("missing_in", "[" + i.missingIn.map(String.init).joined(separator: ",") + "]")
            x.rawText("offered_ip_versions", "[" + i.offeredFamilies.sorted().map(String.init).joined(separator: ",") + "]")
            x.rawText("missing_ip_versions", "[" + i.missingFamilies.sorted().map(String.init).joined(separator: ",") + "]")
            return x.closed
        }))
        crossSession(s, into: &o)
        o.object("capture") { c in
            c.int("connections", capture.reassembly.connections)
            c.int("evicted", capture.reassembly.evicted)
            c.int("evicted_memory", capture.reassembly.evictedForMemory)
            c.int("expired", capture.reassembly.expired)
            c.int("resumed", capture.reassembly.resumed)
            c.int("held_overflows", capture.reassembly.heldOverflows)
            c.int("stray_packets", capture.reassembly.strayPackets)
            c.int("out_of_window", capture.reassembly.outOfWindow)
            c.int("ip_fragments", capture.fragments)
            c.int("ip_reassembled", capture.defragment.reassembled)
            c.int("ip_fragments_left_over", capture.defragment.leftOver)
            c.int("ip_fragment_conflicts", capture.defragment.conflictingOverlaps)
            c.int("ip_datagrams_dropped", capture.defragment.dropped)
            c.int("tunnelled", capture.tunnelled)
            c.int("tunnels_over_limit", capture.tunnelsOverLimit)
            c.int("empty_connections", UInt64(capture.emptyConnections))
            c.int("malformed", capture.malformed)
            c.int("not_tcp", capture.notTCP)
            c.int("other_tcp", capture.otherTCP)
            c.bool("truncated_file", capture.truncatedFile)
            if let drops = capture.drops {
                c.int("received", drops.received)
                c.int("dropped", drops.dropped)
                c.int("if_dropped", drops.interfaceDropped)
            }
        }
        o.rawText("file_frames", JSONObject.array(capture.fileFrames.map { f in
            var x = JSONObject()
            x.string("file", f.file)
            x.int("first_frame", f.firstFrame)
            x.int("last_frame", f.lastFrame)
            x.bool("continues_previous", f.continues)
            return x.closed
        }))
        o.rawText("other_traffic", JSONObject.array(capture.otherTraffic.top(10).map { t in
            var x = JSONObject()
            x.string("what", t.what.kindName)
            x.int("value", UInt64(t.what.value))
            x.int("packets", t.packets)
            x.string("description", t.what.description)
            x.string("hint", t.what.hint)
            return x.closed
        }))
        o.string("not_smtp", CaptureExplanation.notSMTP(capture, sessions: s.sessions))
        return o.closed
    }
}

