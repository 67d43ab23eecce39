import SMTPCapCore
import SMTPMachine
import TLSHandshake

/// Decides a session's findings and its verdict from the facts the SMTP machine recorded:
/// the one place where findings are made.
public enum SessionFindings {
    /// Fills in the record's findings (ordered by frame, then code) and its verdict.
    public static func evaluate(_ record: inout SessionRecord) {
        record.provider = recognisedProvider(record)?.name
        let derived = derive(from: record)
        record.findings += derived
        record.findings.sort { ($0.frame ?? .max, $0.code) < ($1.frame ?? .max, $1.code) }
        let (verdict, reason) = verdict(for: record)
        record.verdict = verdict
        record.verdictReason = reason
    }

    /// The large provider the server is, from its greeting and first EHLO reply.
    static func recognisedProvider(_ r: borrowing SessionRecord) -> MailProvider? {
        guard let host = r.serverName, ProviderKnowledge.mayBeProvider(host) else { return nil }
        let ehloLine = r.ehlo.first(where: { $0.firstLine != nil })?.firstLine
        let greeting = r.banner.flatMap { isMaskedBanner($0) ? nil : $0 }
        return ProviderKnowledge.provider(host: r.serverName, greeting: greeting, ehloLine: ehloLine)
    }

    /// The findings a session's facts support, in no particular order.
    static func derive(from record: borrowing SessionRecord) -> [Finding] {
        var out: [Finding] = []

        if let banner = record.banner, record.bannerFrame != nil, isMaskedBanner(banner) {
            out.append(Finding(code: .bannerMasked, frame: record.bannerFrame,
                message: "the greeting's text is masked (\(banner.prefix(40))): a filtering firewall with ESMTP inspection sits in front of the server"))
        }
        if let frame = record.evidence.heloAfterRejectedEHLOFrame {
            out.append(Finding(code: .ehloRejected, frame: frame,
                message: "the server rejected EHLO and the client fell back to HELO: no extensions, so no STARTTLS"))
        }

        for e in record.ehlo where !e.starttls && e.complete {
            // After an accepted STARTTLS a server does not offer it again: not a finding.
            if let tlsFrame = record.starttls.frame, record.starttls.reply == 220, e.frame > tlsFrame { continue }
            var message = MessageBuilder()
            if e.code / 100 != 2 {
                message.add("EHLO was rejected with ")
                message.add(e.code)
                message.add(": no extensions, so no STARTTLS")
            } else {
                message.add("the EHLO reply did not offer STARTTLS (offered: ")
                if e.keywords.isEmpty { message.add("nothing") }
                for (i, k) in e.keywords.enumerated() {
                    if i > 0 { message.add(" ") }
                    message.addFirstWord(of: k)
                }
                message.add(")")
            }
            out.append(Finding(code: .starttlsMissing, frame: e.frame, message: message.string))
            if !e.maskedKeywords.isEmpty {
                var stripped = MessageBuilder()
                stripped.add("the EHLO reply shows ")
                for (i, k) in e.maskedKeywords.enumerated() {
                    if i > 0 { stripped.add(" ") }
                    stripped.add(k)
                }
                stripped.add(" where STARTTLS belongs: a middlebox (e.g. Cisco ASA ESMTP inspection) masked it")
                out.append(Finding(code: .starttlsStripped, frame: e.frame, message: stripped.string))
            } else if e.code / 100 == 2, let provider = record.provider {
                var stripped = MessageBuilder()
                stripped.add(record.serverName ?? "the server")
                stripped.add(" (")
                stripped.add(provider)
                stripped.add(") always offers STARTTLS: something on the path removed it")
                out.append(Finding(code: .starttlsStripped, frame: e.frame, message: stripped.string))
            }
        }

        if record.ehloNotListedWithoutSTARTTLS > 0 {
            out.append(Finding(code: .starttlsMissing, frame: nil,
                message: "\(record.ehloNotListedWithoutSTARTTLS) more EHLO repl(ies) without STARTTLS past the listing limit"))
        }

        if record.starttls.requested, let code = record.starttls.reply, code != 220 {
            if record.starttls.offered && (code == 500 || code == 502) {
                out.append(Finding(code: .starttlsStripped, frame: record.starttls.frame,
                    message: "STARTTLS was offered but the command came back \(code) (unrecognized): a middlebox rewrote the command"))
            } else {
                out.append(Finding(code: .starttlsRefused, frame: record.starttls.frame,
                    message: "the server answered STARTTLS with \(code)"))
            }
        }

        if record.starttls.offered && !record.starttls.requested, let frame = record.evidence.plaintextAfterOfferFrame {
            out.append(Finding(code: .starttlsUnused, frame: frame,
                message: "STARTTLS was offered but the client went on in plaintext"))
        }

        if let injection = record.evidence.commandInjection {
            out.append(Finding(code: .starttlsCommandInjection, frame: injection.frame,
                message: "\(injection.bytes) bytes of plaintext commands followed STARTTLS before the TLS handshake (CVE-2011-0411 pattern)"))
        }
        if let injection = record.evidence.responseInjection {
            out.append(Finding(code: .starttlsResponseInjection, frame: injection.frame,
                message: "the server sent \(injection.bytes) plaintext bytes after its 220 to STARTTLS before the TLS ServerHello"))
        }
        if record.starttls.reply == 220 && record.tls?.started != true {
            out.append(Finding(code: .tlsNotStarted, frame: record.starttls.frame,
                message: "the server accepted STARTTLS but no TLS handshake followed"))
        }

        if let auth = record.auth, auth.plaintext {
            out.append(Finding(code: .plaintextAuth, frame: auth.frame,
                message: "AUTH \(auth.mechanism) was sent without TLS: the credentials crossed the wire in the clear"))
        }

        for m in record.messages {
            var message = MessageBuilder()
            message.add("message content sent in plaintext with ")
            message.add(m.method == .bdat ? "BDAT" : "DATA")
            message.add(": ")
            message.add(m.bytes)
            message.add(m.truncated ? " bytes (cut short), " : " bytes, ")
            message.add(m.recipients)
            message.add(" recipient(s), ")
            if let code = m.reply {
                message.add(code / 100 == 2 ? "accepted (" : "refused (")
                message.add(code)
                message.add(")")
            } else {
                message.add("no final reply seen")
            }
            out.append(Finding(code: .plaintextData, frame: m.frame, message: message.string))
        }
        if record.messagesNotListed > 0 {
            out.append(Finding(code: .plaintextData, frame: nil,
                message: "\(record.messagesNotListed) more plaintext message(s) past the listing limit"))
        }

        if let tls = record.tls {
            if let hello = tls.serverHello, !hello.helloRetryRequest {
                let version = TLSNames.version(hello.version)
                var weak: [String] = []
                if hello.version < 0x0303 { weak.append("version \(version) (below TLS 1.2)") }
                if TLSNames.isWeak(cipherSuite: hello.cipherSuite) { weak.append("cipher suite \(TLSNames.cipherSuite(hello.cipherSuite))") }
                if !weak.isEmpty {
                    out.append(Finding(code: .weakTLS, frame: tls.frame, message: "weak TLS agreed: " + weak.joined(separator: ", ")))
                }
            }
            if let cert = tls.certificate {
                if cert.notAfter < record.start.seconds || cert.notBefore > record.start.seconds {
                    out.append(Finding(code: .certificateExpired, frame: tls.frame,
                        message: "the server certificate (\(cert.subject)) was not valid at the time of the session"))
                }
                if cert.selfSigned {
                    out.append(Finding(code: .certificateSelfSigned, frame: tls.frame,
                        message: "the server certificate (\(cert.subject)) is self-signed"))
                }
            }
            if let alert = tls.alert, alert.level == 2 {
                out.append(Finding(code: .tlsFailed, frame: alert.frame,
                    message: "the \(alert.fromServer ? "server" : "client") sent the TLS alert \(TLSNames.alert(alert.description))"))
            } else if tls.started && tls.serverHello == nil && record.evidence.serverAnswered && record.evidence.serverTLSRecords == 0 {
                out.append(Finding(code: .tlsFailed, frame: tls.frame,
                    message: "the ClientHello got no ServerHello\(tls.problem.map { " (\($0))" } ?? "")"))
            }
        }

        let serverPath = record.serverStats.path
        // A one-hop wobble is common (load balancers, equal-cost routes) and not called; two
        // hops or more is another box.
        if serverPath.largestDeviation >= 2, let changed = serverPath.changedTTL {
            let usual = serverPath.firstTTL
            out.append(Finding(code: .serverTTLChanged, frame: serverPath.changedFrame,
                message: "\(serverPath.ttlChanges) server packet(s) arrived with TTL \(changed) where the server's packets after the handshake came with \(usual): another box sent or rewrote them"))
        }

        let gaps = record.clientStats.gaps + record.serverStats.gaps
        if gaps > 0 {
            let lost = record.clientStats.lostBytes + record.serverStats.lostBytes
            out.append(Finding(code: .captureGap, frame: nil,
                message: "\(gaps) gap(s), \(lost) bytes missing from the capture (client \(record.clientStats.lostBytes), server \(record.serverStats.lostBytes)): results may be incomplete"))
        }
        return out
    }

    public static func verdict(for r: borrowing SessionRecord) -> (Verdict, String) {
        if r.findings.contains(where: { $0.code == .starttlsStripped }) {
            if r.ehlo.contains(where: { !$0.maskedKeywords.isEmpty && !$0.starttls }) {
                let masked = r.ehlo.flatMap(\.maskedKeywords).first ?? "XXXXXXXA"
                return (.stripped, "NOT ENCRYPTED: server's EHLO reply had no STARTTLS (masked as \(masked): a middlebox is stripping it)")
            }
            let rewritten = r.findings.contains { $0.code == .starttlsStripped && $0.frame != nil && $0.frame == r.starttls.frame }
            if let provider = r.provider, !rewritten, r.ehlo.contains(where: { !$0.starttls && $0.code / 100 == 2 }) {
                return (.stripped, "NOT ENCRYPTED: \(r.serverName ?? "the server") (\(provider)) always offers STARTTLS, its EHLO reply had none: something on the path removed it")
            }
            return (.stripped, "NOT ENCRYPTED: STARTTLS was rewritten on the path (the server answered it as an unknown command)")
        }
        let plaintextMessages = r.messages.count + r.messagesNotListed
        if plaintextMessages > 0 {
            let why: String
            if r.starttls.reply == 220 { why = "STARTTLS was accepted but no TLS followed" }
            else if r.starttls.requested { why = "STARTTLS was refused" }
            else if r.starttls.offered { why = "STARTTLS was offered but not used" }
            else if r.greeting == "HELO" { why = "the client used HELO: no extensions, no STARTTLS" }
            else if r.ehlo.isEmpty { why = "no EHLO reply seen" }
            else { why = "the server's EHLO reply had no STARTTLS" }
            var reason = MessageBuilder()
            reason.add("NOT ENCRYPTED: ")
            reason.add(plaintextMessages)
            reason.add(" message(s) sent in plaintext (")
            reason.add(why)
            reason.add(")")
            return (.plaintext, reason.string)
        }
        if let tls = r.tls, tls.started {
            var what = tls.implicit ? "ENCRYPTED (implicit TLS)" : "ENCRYPTED after STARTTLS"
            if let hello = tls.serverHello {
                var reason = MessageBuilder()
                reason.add(what)
                reason.add(" (")
                reason.add(TLSNames.version(hello.version))
                reason.add(", ")
                reason.add(TLSNames.cipherSuite(hello.cipherSuite))
                reason.add(")")
                what = reason.string
            } else if r.findings.contains(where: { $0.code == .tlsFailed }) {
                what = "TLS HANDSHAKE FAILED"
                return (.inconclusive, what)
            }
            return (.encrypted, what)
        }
        if r.auth?.plaintext == true {
            return (.plaintext, "NOT ENCRYPTED: credentials sent in plaintext (no message)")
        }
        if r.gaps > 0 { return (.inconclusive, "INCONCLUSIVE: bytes missing from the capture and no message seen") }
        if !r.handshakeSeen { return (.inconclusive, "INCONCLUSIVE: the capture starts mid-session and no message was seen") }
        return (.inconclusive, "INCONCLUSIVE: no message was exchanged")
    }
}


/// Builds a message as bytes and makes one String of it at the end: string interpolation
/// costs an append of hundreds of instructions per piece, and sessions make several messages.
struct MessageBuilder {
    private var bytes: [UInt8] = []

    init() { bytes.reserveCapacity(256) }

    mutating func add(_ s: StaticString) { s.withUTF8Buffer { bytes.append(contentsOf: $0) } }
    mutating func add(_ s: String) { withUTF8Span(s) { bytes.append(span: $0) } }

    /// The first word of `s` (as `firstWord` gives it).
    mutating func addFirstWord(of s: String) {
        withUTF8Span(s) { bytes.append(span: $0.extracting(firstWordRange($0))) }
    }

    mutating func add<T: BinaryInteger>(_ value: T) {
        if value < 0 { bytes.append(0x2d) }
        var v = UInt64(value.magnitude)  // the counters are at most 64 bits; BDAT sizes reach 2^64-1
        var digits = InlineArray<20, UInt8>(repeating: 0)
        var n = 0
        repeat {
            digits[n] = UInt8(v % 10) + 0x30
            v /= 10
            n += 1
        } while v > 0
        while n > 0 {
            n -= 1
            bytes.append(digits[n])
        }
    }

    var string: String { String(decoding: bytes, as: UTF8.self) }
}
