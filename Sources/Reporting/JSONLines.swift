import PacketDecoding
import SMTPAnalysis
import TCPReassembly

/// A tiny JSON object writer: keys in insertion order, ASCII output, bytes appended to one
/// buffer, no Foundation.
public struct JSONObject {
    public private(set) var bytes: [UInt8] = [0x7b]
    private var first = true

    public init() {
        bytes.reserveCapacity(512)
    }

    /// A writer that appends to no buffer of its own yet (used by `objects`).
    private init(empty: Void) {
        bytes = []
    }

    @inline(__always)
    private mutating func append(_ s: StaticString) {
        s.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    private mutating func key(_ k: StaticString) {
        if !first { bytes.append(0x2c) }
        first = false
        bytes.append(0x22)
        append(k)
        bytes.append(0x22)
        bytes.append(0x3a)
    }

    public mutating func string(_ k: StaticString, _ v: String?) {
        key(k)
        if let v { Escape.json(v, into: &bytes) } else { append("null") }
    }
    public mutating func int<T: BinaryInteger>(_ k: StaticString, _ v: T?) {
        key(k)
        guard let v else { return append("null") }
        JSONObject.appendDecimal(Int64(v), into: &bytes)
    }
    public mutating func bool(_ k: StaticString, _ v: Bool?) {
        key(k)
        switch v {
        case .some(true): append("true")
        case .some(false): append("false")
        case .none: append("null")
        }
    }
    public mutating func raw(_ k: StaticString, _ json: String) {
        key(k)
        bytes.append(contentsOf: json.utf8)
    }
    /// A key whose name is not a literal (anomaly names, server keys); escaped.
    public mutating func int(dynamicKey k: String, _ v: Int) {
        if !first { bytes.append(0x2c) }
        first = false
        Escape.json(k, into: &bytes)
        bytes.append(0x3a)
        JSONObject.appendDecimal(Int64(v), into: &bytes)
    }
    public mutating func object(_ k: StaticString, _ build: (inout JSONObject) -> Void) {
        key(k)
        var o = JSONObject(empty: ())
        swap(&o.bytes, &bytes)
        o.bytes.append(0x7b)
        build(&o)
        o.bytes.append(0x7d)
        swap(&o.bytes, &bytes)
    }
    /// A timestamp as an ISO 8601 string, written straight into the buffer.
    public mutating func timestamp(_ k: StaticString, _ t: Timestamp) {
        key(k)
        bytes.append(0x22)
        t.appendISO8601(into: &bytes)
        bytes.append(0x22)
    }
    /// An endpoint as `address:port` (`[v6]:port`), written straight into the buffer.
    public mutating func endpoint(_ k: StaticString, _ e: Endpoint) {
        key(k)
        bytes.append(0x22)
        if e.address.isIPv6 {
            bytes.append(0x5b)
            bytes.append(contentsOf: e.address.description.utf8)
            bytes.append(0x5d)
        } else {
            let v = UInt32(truncatingIfNeeded: e.address.low)
            for shift in [24, 16, 8, 0] as [UInt32] {
                JSONObject.appendDecimal(Int64((v >> shift) & 0xff), into: &bytes)
                if shift > 0 { bytes.append(0x2e) }
            }
        }
        bytes.append(0x3a)
        JSONObject.appendDecimal(Int64(e.port), into: &bytes)
        bytes.append(0x22)
    }
    /// An array of strings, escaped straight into the buffer.
    public mutating func strings(_ k: StaticString, _ items: [String]) {
        key(k)
        bytes.append(0x5b)
        for (i, item) in items.enumerated() {
            if i > 0 { bytes.append(0x2c) }
            Escape.json(item, into: &bytes)
        }
        bytes.append(0x5d)
    }

    /// An array of objects, each built straight into the buffer.
    public mutating func objects<T>(_ k: StaticString, _ items: [T], _ build: (T, inout JSONObject) -> Void) {
        key(k)
        bytes.append(0x5b)
        for (i, item) in items.enumerated() {
            if i > 0 { bytes.append(0x2c) }
            var o = JSONObject(empty: ())
            swap(&o.bytes, &bytes)
            o.bytes.append(0x7b)
            build(item, &o)
            o.bytes.append(0x7d)
            swap(&o.bytes, &bytes)
        }
        bytes.append(0x5d)
    }

    public var closed: String {
        var b = bytes
        b.append(0x7d)
        return String(decoding: b, as: UTF8.self)
    }

    static func appendDecimal(_ v: Int64, into out: inout [UInt8]) {
        if v < 0 { out.append(0x2d) }
        var magnitude = v.magnitude
        if magnitude == 0 { out.append(0x30); return }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while magnitude > 0 {
                d[n] = UInt8(magnitude % 10) + 0x30
                magnitude /= 10
                n += 1
            }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }

    public static func array(_ items: [String]) -> String { "[" + items.joined(separator: ",") + "]" }
    public static func strings(_ items: [String]) -> String { array(items.map { Escape.json($0) }) }
}

/// One JSON object per session and one summary line: the machine-readable report. Field names
/// are stable; downstream tools parse them.
public enum JSONLinesReport {
    public static func session(_ r: SessionRecord, file: String?) -> String {
        sessionObject(r, file: file).closed
    }

    /// The session line as bytes, newline included, for the output buffer.
    public static func sessionLine(_ r: SessionRecord, file: String?) -> [UInt8] {
        var bytes = sessionObject(r, file: file).bytes
        bytes.append(0x7d)
        bytes.append(0x0a)
        return bytes
    }

    static func sessionObject(_ r: SessionRecord, file: String?) -> JSONObject {
        var o = JSONObject()
        o.string("type", "session")
        o.int("id", r.id)
        if let file { o.string("file", file) }
        o.endpoint("client", r.client)
        o.endpoint("server", r.server)
        o.int("ip_version", r.ipVersion)
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
        o.string("greeting", r.greeting)
        o.objects("ehlo", r.ehlo) { e, x in
            x.int("frame", e.frame)
            x.int("code", e.code)
            x.strings("keywords", e.keywords)
            x.bool("starttls", e.starttls)
            x.bool("complete", e.complete)
            if !e.maskedKeywords.isEmpty { x.strings("masked", e.maskedKeywords) }
        }
        if r.ehloNotListed > 0 { o.int("ehlo_not_listed", r.ehloNotListed) }
        o.object("starttls") { s in
            s.bool("offered", r.starttls.offered)
            s.bool("requested", r.starttls.requested)
            s.int("reply", r.starttls.reply)
            s.int("frame", r.starttls.frame)
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
            var a = JSONObject()
            for (k, v) in r.anomalies.sorted(by: { $0.key < $1.key }) { a.int(dynamicKey: k, v) }
            o.raw("anomalies", a.closed)
        }
        if let transcript = r.transcript {
            o.objects("transcript", transcript) { line, x in
                x.string("dir", line.direction == .clientToServer ? "C" : "S")
                x.int("frame", line.frame)
                x.string("text", line.text)
            }
        }
        return o
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
        o.raw("files", JSONObject.strings(capture.files))
        o.int("packets", capture.packets)
        o.int("sessions", s.sessions)
        var v = JSONObject()
        for verdict in Verdict.allCases { v.int(dynamicKey: verdict.rawValue, s.verdicts[verdict] ?? 0) }
        o.raw("verdicts", v.closed)
        o.int("plaintext_messages", s.plaintextMessages)
        var f = JSONObject()
        for code in FindingCode.allCases {
            let n = code == .starttlsInconsistent ? s.inconsistencies.count : (s.findings[code] ?? 0)
            if n > 0 { f.int(dynamicKey: code.rawValue, n) }
        }
        o.raw("findings", f.closed)
        o.int("total_findings", s.totalFindings)
        o.raw("by_server", JSONObject.array(s.byServer.sorted { $0.key < $1.key }.map { key, t in
            var x = JSONObject()
            x.string("server", key)
            tally(t)(&x)
            return x.closed
        }))
        var fam = JSONObject()
        for (family, t) in s.byFamily.sorted(by: { $0.key < $1.key }) {
            var x = JSONObject()
            tally(t)(&x)
            fam.raw(family == 6 ? "ipv6" : "ipv4", x.closed)
        }
        o.raw("by_family", fam.closed)
        o.raw("starttls_inconsistent", JSONObject.array(s.inconsistencies.map { i in
            var x = JSONObject()
            x.string("server", i.server)
            x.raw("offered_in", "[" + i.offeredIn.map(String.init).joined(separator: ",") + "]")
            x.raw("missing_in", "[" + i.missingIn.map(String.init).joined(separator: ",") + "]")
            x.raw("offered_ip_versions", "[" + i.offeredFamilies.sorted().map(String.init).joined(separator: ",") + "]")
            x.raw("missing_ip_versions", "[" + i.missingFamilies.sorted().map(String.init).joined(separator: ",") + "]")
            return x.closed
        }))
        o.object("capture") { c in
            c.int("connections", capture.reassembly.connections)
            c.int("evicted", capture.reassembly.evicted)
            c.int("evicted_memory", capture.reassembly.evictedForMemory)
            c.int("expired", capture.reassembly.expired)
            c.int("held_overflows", capture.reassembly.heldOverflows)
            c.int("stray_packets", capture.reassembly.strayPackets)
            c.int("out_of_window", capture.reassembly.outOfWindow)
            c.int("ip_fragments", capture.fragments)
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
        return o.closed
    }
}

/// Capture-level facts for the summary, filled by the engine.
public struct CaptureFacts: Sendable {
    public struct Drops: Sendable {
        public var received: UInt64
        public var dropped: UInt64
        public var interfaceDropped: UInt64
        public init(received: UInt64, dropped: UInt64, interfaceDropped: UInt64) {
            self.received = received
            self.dropped = dropped
            self.interfaceDropped = interfaceDropped
        }
    }
    public var files: [String] = []
    public var packets: UInt64 = 0
    public var fragments: UInt64 = 0
    public var malformed: UInt64 = 0
    public var notTCP: UInt64 = 0
    /// TCP packets on other ports (skipped by the default port filter).
    public var otherTCP: UInt64 = 0
    public var truncatedFile = false
    public var reassembly = ReassemblyStats()
    public var drops: Drops?
    public init() {}

    /// Adds the facts of another file's analysis.
    public mutating func merge(_ other: CaptureFacts) {
        files += other.files
        packets += other.packets
        fragments += other.fragments
        malformed += other.malformed
        notTCP += other.notTCP
        otherTCP += other.otherTCP
        truncatedFile = truncatedFile || other.truncatedFile
        reassembly.add(other.reassembly)
    }
}
