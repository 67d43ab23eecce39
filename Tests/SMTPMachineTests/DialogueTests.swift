import SMTPCapTestSupport
import TLSHandshake
import Findings
import SMTPCapCore
import TCPReassembly
import SMTPMachine
import Testing

/// TLS records shaped as RFC 8446 describes them, for the machine's hand-over to the TLS reader.
enum TLSBytes {
    static func record(_ type: UInt8, _ body: [UInt8]) -> [UInt8] {
        [type, 0x03, 0x01, UInt8(body.count >> 8), UInt8(body.count & 0xff)] + body
    }
    static func handshake(_ type: UInt8, _ body: [UInt8]) -> [UInt8] {
        [type, UInt8(body.count >> 16), UInt8((body.count >> 8) & 0xff), UInt8(body.count & 0xff)] + body
    }
    static func vec16(_ b: [UInt8]) -> [UInt8] { [UInt8(b.count >> 8), UInt8(b.count & 0xff)] + b }
    static func ext(_ type: UInt16, _ body: [UInt8]) -> [UInt8] { [UInt8(type >> 8), UInt8(type & 0xff)] + vec16(body) }

    static func clientHello(sni: String = "mx.example.org") -> [UInt8] {
        let name = Array(sni.utf8)
        let sniExt = ext(0, vec16([0] + vec16(name)))
        let versions = ext(43, [4, 0x03, 0x04, 0x03, 0x03])
        let alpn = ext(16, vec16([4] + Array("smtp".utf8)))
        let body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 7, count: 32) + [0]
            + vec16([0x13, 0x01, 0x13, 0x02, 0xc0, 0x2f]) + [1, 0] + vec16(sniExt + versions + alpn)
        return record(22, handshake(1, body))
    }
    static func serverHello(version: UInt16 = 0x0304, suite: UInt16 = 0x1302) -> [UInt8] {
        var extensions: [UInt8] = []
        if version == 0x0304 { extensions = ext(43, [0x03, 0x04]) }
        let body: [UInt8] = [0x03, 0x03] + [UInt8](repeating: 9, count: 32) + [0]
            + [UInt8(suite >> 8), UInt8(suite & 0xff), 0] + vec16(extensions)
        return record(22, handshake(2, body))
    }
    static let changeCipherSpec = record(20, [1])
    static let applicationData = record(23, [UInt8](repeating: 0xaa, count: 40))
}

let greeting = Step.s("220 mx.example.org ESMTP Postfix\r\n")
let ehloWithTLS = Step.s("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-STARTTLS\r\n250 8BITMIME\r\n")
let ehloMasked = Step.s("250-mx.example.org\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-XXXXXXXA\r\n250 8BITMIME\r\n")
let ehloNoTLS = Step.s("250-mx.example.org\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
let mailTransaction: [Step] = [
    .c("MAIL FROM:<a@example.net>\r\n"), .s("250 2.1.0 Ok\r\n"),
    .c("RCPT TO:<b@example.org>\r\n"), .s("250 2.1.5 Ok\r\n"),
    .c("DATA\r\n"), .s("354 End data with <CR><LF>.<CR><LF>\r\n"),
    .c("Subject: hi\r\n\r\nbody line\r\n..dot-stuffed\r\n.\r\n"), .s("250 2.0.0 Ok: queued as ABC\r\n"),
]

/// Dialogues from RFC 5321, 3207, 3030, 2920 and 4954, with the facts they must give.
struct Dialogue: CustomStringConvertible {
    var name: String
    var steps: [Step]
    var check: @Sendable (Facts) -> Void
    var description: String { name }
}

let dialogues: [Dialogue] = [
    Dialogue(name: "STARTTLS stripped by a middlebox (XXXXXXXA)", steps: [
        greeting, .c("EHLO client.example.net\r\n"), ehloMasked,
    ] + mailTransaction + [.c("QUIT\r\n"), .s("221 Bye\r\n")]) { f in
        #expect(f.ehlo == [false])
        #expect(f.masked == [["XXXXXXXA"]])
        #expect(f.findings.contains("starttls-missing@3"))
        #expect(f.findings.contains("starttls-stripped@3"))
        #expect(f.findings.contains("plaintext-data@8"))
        #expect(f.messages == ["DATA 41 rcpt=1 reply=250"])
        #expect(f.verdict == .stripped)
    },
    Dialogue(name: "STARTTLS and TLS 1.3", steps: [
        greeting, .c("EHLO client.example.net\r\n"), ehloWithTLS,
        .c("STARTTLS\r\n"), .s("220 2.0.0 Ready to start TLS\r\n"),
        .c(bytes: TLSBytes.clientHello()), .s(bytes: TLSBytes.serverHello() + TLSBytes.changeCipherSpec + TLSBytes.applicationData),
        .c(bytes: TLSBytes.changeCipherSpec + TLSBytes.applicationData),
    ]) { f in
        #expect(f.ehlo == [true])
        #expect(f.starttls.offered && f.starttls.requested && f.starttls.reply == 220)
        #expect(f.tlsStarted)
        #expect(f.tlsVersion == "TLS1.3")
        #expect(f.findings.isEmpty)
        #expect(f.verdict == .encrypted)
    },
    Dialogue(name: "server offers no STARTTLS, plaintext delivery", steps: [
        greeting, .c("EHLO client.example.net\r\n"), ehloNoTLS,
    ] + mailTransaction) { f in
        #expect(f.ehlo == [false])
        #expect(f.findings == ["starttls-missing@3", "plaintext-data@8"])
        #expect(f.verdict == .plaintext)
    },
    Dialogue(name: "STARTTLS offered but unused", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
    ] + mailTransaction) { f in
        #expect(f.findings == ["starttls-unused@4", "plaintext-data@8"])
        #expect(f.verdict == .plaintext)
    },
    Dialogue(name: "STARTTLS refused with 454, client goes on in plaintext", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
        .c("STARTTLS\r\n"), .s("454 4.7.0 TLS not available due to local problem\r\n"),
    ] + mailTransaction) { f in
        #expect(f.starttls.reply == 454)
        #expect(f.findings.contains("starttls-refused@5"))
        #expect(f.findings.contains("plaintext-data@10"))
        #expect(!f.findings.contains { $0.hasPrefix("starttls-unused") })
        #expect(f.verdict == .plaintext)
    },
    Dialogue(name: "STARTTLS rewritten: 502 to an offered STARTTLS", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
        .c("STARTTLS\r\n"), .s("502 5.5.2 Error: command not recognized\r\n"),
    ] + mailTransaction) { f in
        #expect(f.findings.contains("starttls-stripped@5"))
        #expect(!f.findings.contains { $0.hasPrefix("starttls-refused") })
        #expect(f.verdict == .stripped)
    },
    Dialogue(name: "STARTTLS command injection (CVE-2011-0411 pattern)", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
        .c("STARTTLS\r\nRSET\r\n"), .s("220 Ready\r\n"),
        .c(bytes: TLSBytes.clientHello()), .s(bytes: TLSBytes.serverHello()),
    ]) { f in
        #expect(f.tlsStarted)
        #expect(f.findings == ["starttls-command-injection@4"])
        #expect(f.verdict == .encrypted)
    },
    Dialogue(name: "STARTTLS response injection", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
        .c("STARTTLS\r\n"), .s("220 Ready\r\n"),
        .c(bytes: TLSBytes.clientHello()), .s(bytes: Array("250 injected\r\n".utf8) + TLSBytes.serverHello()),
    ]) { f in
        #expect(f.tlsStarted)
        #expect(f.findings.contains("starttls-response-injection@7"))
    },
    Dialogue(name: "220 to STARTTLS, then plaintext: TLS never started", steps: [
        greeting, .c("EHLO c\r\n"), ehloWithTLS,
        .c("STARTTLS\r\n"), .s("220 Ready\r\n"),
        .c("EHLO c\r\n"), .s("250-mx.example.org\r\n250 PIPELINING\r\n"),
    ] + mailTransaction) { f in
        #expect(!f.tlsStarted)
        #expect(f.ehlo == [true, false])
        #expect(f.findings.contains("tls-not-started@5"))
        #expect(f.findings.contains("plaintext-data@12"))
        // The EHLO after an accepted STARTTLS is not a missing-STARTTLS finding.
        #expect(!f.findings.contains { $0.hasPrefix("starttls-missing") })
    },
    Dialogue(name: "AUTH PLAIN and LOGIN in plaintext", steps: [
        greeting, .c("EHLO c\r\n"), .s("250-mx\r\n250 AUTH PLAIN LOGIN\r\n"),
        .c("AUTH LOGIN\r\n"), .s("334 VXNlcm5hbWU6\r\n"), .c("dXNlcg==\r\n"), .s("334 UGFzc3dvcmQ6\r\n"),
        .c("UzNjcjN0LUh1bnRlcjI=\r\n"), .s("235 2.7.0 Authentication successful\r\n"),
    ] + mailTransaction) { f in
        #expect(f.auth == "LOGIN plaintext=true reply=235")
        #expect(f.findings.contains("plaintext-auth@4"))
        #expect(f.messages.count == 1)
    },
    Dialogue(name: "BDAT chunks (RFC 3030)", steps: [
        greeting, .c("EHLO c\r\n"), .s("250-mx\r\n250 CHUNKING\r\n"),
        .c("MAIL FROM:<a@b>\r\n"), .s("250 ok\r\n"), .c("RCPT TO:<c@d>\r\n"), .s("250 ok\r\n"),
        .c("BDAT 10\r\n0123456789"), .s("250 10 octets\r\n"),
        .c("BDAT 5 LAST\r\n.\r\n.\r"), .s("250 queued\r\n"),
    ]) { f in
        #expect(f.messages == ["BDAT 15 rcpt=1 reply=250"])
        #expect(f.findings.contains("plaintext-data@8"))
    },
    Dialogue(name: "PIPELINING: two messages, batched commands and replies", steps: [
        greeting, .c("EHLO c\r\n"), .s("250-mx\r\n250 PIPELINING\r\n"),
        .c("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n"),
        .s("250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        .c("one\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
        .s("250 queued 1\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
        .c("two\r\n.\r\nQUIT\r\n"), .s("550 rejected\r\n221 bye\r\n"),
    ]) { f in
        #expect(f.messages == ["DATA 5 rcpt=2 reply=250", "DATA 5 rcpt=1 reply=550"])
    },
    Dialogue(name: "HELO only: no EHLO reply, so no starttls-missing", steps: [
        greeting, .c("HELO c\r\n"), .s("250 mx\r\n"),
    ] + mailTransaction) { f in
        #expect(f.greeting == "HELO")
        #expect(f.ehlo.isEmpty)
        #expect(f.findings == ["plaintext-data@8"])
    },
    Dialogue(name: "EHLO rejected, HELO fallback", steps: [
        greeting, .c("EHLO c\r\n"), .s("502 5.5.1 EHLO not implemented\r\n"),
        .c("HELO c\r\n"), .s("250 mx\r\n"),
    ] + mailTransaction) { f in
        #expect(f.ehlo == [false])
        #expect(f.greeting == "HELO")
        #expect(f.findings.contains("ehlo-rejected@4"))
    },
    Dialogue(name: "bare LF line ends", steps: [
        .s("220 mx ESMTP\n"), .c("EHLO c\n"), .s("250-mx\n250 SIZE\n"),
        .c("MAIL FROM:<a@b>\n"), .s("250 ok\n"), .c("RCPT TO:<c@d>\n"), .s("250 ok\n"),
        .c("DATA\n"), .s("354 go\n"), .c("hello\n.\n"), .s("250 ok\n"),
    ]) { f in
        #expect(f.messages == ["DATA 6 rcpt=1 reply=250"])
    },
    Dialogue(name: "DATA refused: the following text is not a message", steps: [
        greeting, .c("EHLO c\r\n"), ehloNoTLS, .c("MAIL FROM:<a@b>\r\n"), .s("250 ok\r\n"),
        .c("DATA\r\n"), .s("554 no valid recipients\r\n"), .c("QUIT\r\n"), .s("221 bye\r\n"),
    ]) { f in
        #expect(f.messages.isEmpty)
        #expect(f.verdict == .inconclusive)
    },
    Dialogue(name: "masked banner", steps: [
        .s("220 ***************************************************\r\n"), .c("HELO c\r\n"), .s("250 ok\r\n"),
    ]) { f in
        #expect(f.findings == ["banner-masked@1"])
    },
]

@Suite("SMTP dialogues")
struct DialogueTests {
    @Test(arguments: dialogues)
    func dialogueGivesTheSameFactsInEverySplit(_ d: Dialogue) {
        let reference = Facts(run(d.steps))
        d.check(reference)
        for split in Split.all {
            let facts = Facts(run(d.steps, split: split))
            #expect(facts == reference, "split \(split) of \(d.name)")
        }
    }

    @Test func implicitTLSOn465() {
        let steps: [Step] = [.c(bytes: TLSBytes.clientHello()), .s(bytes: TLSBytes.serverHello(version: 0x0303, suite: 0xc02f))]
        for split in Split.all {
            let r = run(steps, split: split, serverPort: 465)
            #expect(r.tls?.implicit == true)
            #expect(r.tls?.started == true)
            #expect(r.tls?.clientHello?.serverName == "mx.example.org")
            #expect(r.tls?.clientHello?.alpn == ["smtp"])
            #expect(r.tls?.serverHello?.cipherSuite == 0xc02f)
            #expect(r.verdict == .encrypted)
        }
    }

    @Test func weakTLSIsReported() {
        let steps: [Step] = [.c(bytes: TLSBytes.clientHello()), .s(bytes: TLSBytes.serverHello(version: 0x0301, suite: 0x000a))]
        let r = run(steps, serverPort: 465)
        #expect(r.findings.map(\.code) == [.weakTLS])
    }

    @Test func transcriptHidesCredentialsAndContent() {
        let secret = "UzNjcjN0LUh1bnRlcjI="
        let steps: [Step] = [
            greeting, .c("EHLO c\r\n"), .s("250-mx\r\n250 AUTH PLAIN\r\n"),
            .c("AUTH PLAIN \(secret)\r\n"), .s("235 ok\r\n"),
            .c("AUTH LOGIN\r\n"), .s("334 VXNlcm5hbWU6\r\n"), .c("\(secret)\r\n"), .s("535 no\r\n"),
        ] + mailTransaction
        let r = run(steps, transcript: true)
        let text = r.transcript!.map(\.text).joined(separator: "\n")
        #expect(!text.contains(secret))
        #expect(!text.contains("body line"))
        #expect(!text.contains("dot-stuffed"))
        #expect(text.contains("<AUTH data: \(secret.count) bytes>"))
        #expect(text.contains("AUTH PLAIN <initial response: \(secret.count) bytes>"))
        #expect(text.contains("<message content: 41 bytes>"))
    }

    @Test(arguments: Split.all)
    func anAuthAnswerWhoseChallengeWasNotCapturedStaysSecret(_ split: Split) {
        // Only the client's direction: the 334 never reaches the machine, so the answer is an
        // unknown line; it is shown by its size.
        let secret = "U2VjcmV0UGFzc3dvcmQxMjM="
        let r = run([.c("EHLO c\r\n"), .c("AUTH LOGIN\r\n"), .c("\(secret)\r\n"), .c("QUIT\r\n")], split: split, transcript: true)
        let text = r.transcript!.map(\.text).joined(separator: "\n")
        #expect(!text.contains(secret) && !text.contains("U2Vj"))
        #expect(text.contains("<unknown command: \(secret.count) bytes>"))
    }

    @Test func megabyteLineIsBoundedAndCounted() {
        let long = String(repeating: "A", count: 1 << 20)
        let r = run([greeting, .c("EHLO \(long)\r\n"), .s("250 mx\r\n"), .c("NOOP\r\n"), .s("250 ok\r\n")], split: .random(3))
        #expect(r.anomalies[Anomaly(rawValue: "line-truncated")!] == 1)
        #expect(r.heloName!.utf8.count <= 100)
        #expect(r.commands == 2)
    }

    @Test func endlessMultilineReplyIsBounded() {
        var reply = "250-mx\r\n"
        for i in 0..<50_000 { reply += "250-KEYWORD\(i)\r\n" }
        reply += "250 END\r\n"
        let r = run([greeting, .c("EHLO c\r\n"), .s(reply)])
        #expect(r.ehlo.count == 1)
        #expect(r.ehlo[0].keywords.count <= 64)
        #expect(r.anomalies[Anomaly(rawValue: "reply-over-10000-lines")!] != nil)
    }

    /// A client that pipelines DATA and content behind AUTH, then answers the 334: its answer
    /// is a credential and the bytes held behind DATA may be content. Neither reaches the
    /// transcript, in any split.
    @Test(arguments: Split.all)
    func authAnswerAfterPipelinedDataStaysSecret(_ split: Split) {
        let r = run([greeting, .c("EHLO c\r\n"), .s("250-mx\r\n250 AUTH LOGIN\r\n"),
                     .c("AUTH LOGIN\r\nDATA\r\nSecret body line\r\n"), .s("334 VXNlcm5hbWU6\r\n"),
                     .c("dXNlcg==\r\n"), .s("535 no\r\n"), .c("QUIT\r\n"), .s("221 bye\r\n")],
                    split: split, transcript: true)
        let text = (r.transcript ?? []).map(\.text).joined(separator: "\n")
        #expect(!text.contains("dXNlcg"), "\(split): \(text)")
        #expect(!text.contains("Secret body"), "\(split): \(text)")
        #expect(text.contains("<AUTH data: 8 bytes>"), "\(split): \(text)")
    }

    @Test func endlessEHLOsAreCountedNotKept() {
        // A client repeating EHLO: 16 replies are listed, the rest counted, and every reply
        // without STARTTLS is still a finding (the unlisted ones in one).
        var steps = [greeting]
        for i in 0..<40 {
            steps.append(.c("EHLO c\(i)\r\n"))
            steps.append(.s("250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"))
        }
        let r = run(steps)
        #expect(r.ehlo.count == 16)
        #expect(r.ehloNotListed == 24)
        #expect(r.ehloNotListedWithoutSTARTTLS == 24)
        #expect(r.anomalies[Anomaly(rawValue: "ehlo-replies-not-listed")!] == 24)
        let missing = r.findings.filter { $0.code == .starttlsMissing }
        #expect(missing.count == 17)
        #expect(missing.contains { $0.frame == nil && $0.message.hasPrefix("24 more EHLO") })
    }

    @Test func keptWireTextCountsAgainstTheBufferBudget() {
        // The EHLO keywords a session keeps and the reply lines in progress are buffers too.
        var session = SMTPSession(info: info(serverPort: 25, handshake: true))
        let before = session.bufferedBytes
        let long = String(repeating: "K", count: 90)
        var reply = "250-mx\r\n"
        for _ in 0..<60 { reply += "250-\(long)\r\n" }
        for step in [greeting, .c("EHLO c\r\n"), .s(reply)] {
            session.data(step.bytes.span, step.direction, ChunkMeta(frame: 1, timestamp: .zero))
        }
        let midReply = session.bufferedBytes
        #expect(midReply - before >= 60 * 90)
        session.data(Array("250 END\r\n".utf8).span, .serverToClient, ChunkMeta(frame: 2, timestamp: .zero))
        #expect(session.bufferedBytes - before >= 60 * 90)
    }

    @Test func hugeBDATIsCountedNotBuffered() {
        let r = run([greeting, .c("EHLO c\r\n"), .s("250 CHUNKING\r\n"), .c("MAIL FROM:<a@b>\r\n"), .s("250 ok\r\n"),
                     .c("BDAT 9223372036854775807 LAST\r\n" + String(repeating: "x", count: 100_000))])
        #expect(r.messages.count == 1)
        #expect(r.messages[0].bytes == 100_000)
        #expect(r.messages[0].truncated)
        let overflow = run([greeting, .c("EHLO c\r\n"), .s("250 CHUNKING\r\n"), .c("BDAT 99999999999999999999 LAST\r\n")])
        #expect(overflow.messages.isEmpty)
        #expect(overflow.anomalies[Anomaly(rawValue: "bdat-invalid")!] == 1)
    }

    @Test func gapInContentResynchronisesOnTheReply() {
        // The end-of-data line was lost in a gap: the server's reply ends the message.
        let steps: [Step] = [greeting, .c("EHLO c\r\n"), ehloNoTLS, .c("MAIL FROM:<a@b>\r\n"), .s("250 ok\r\n"),
                             .c("RCPT TO:<c@d>\r\n"), .s("250 ok\r\n"), .c("DATA\r\n"), .s("354 go\r\n"),
                             .c("part one\r\n"), .s("250 queued\r\n"), .c("QUIT\r\n"), .s("221 bye\r\n")]
        let r = run(steps, gaps: [10: (.clientToServer, 500)])
        #expect(r.messages.count == 1)
        #expect(r.messages[0].reply == 250)
        #expect(r.messages[0].truncated)
        #expect(r.messages[0].bytes == 510)
        #expect(r.commands == 5)
    }

    @Test func midSessionStartResynchronises() {
        let steps: [Step] = [.c("ent line\r\n.\r\n"), .s("250 queued\r\n"), .c("MAIL FROM:<a@b>\r\n"), .s("250 ok\r\n"),
                             .c("RCPT TO:<c@d>\r\n"), .s("250 ok\r\n"), .c("DATA\r\n"), .s("354 go\r\n"), .c("x\r\n.\r\n"), .s("250 ok\r\n")]
        let r = run(steps, handshake: false)
        #expect(r.messages.count == 1)
        #expect(r.messages[0].reply == 250)
    }

    @Test func garbageIsNotSMTP() {
        var rng = SeededRandom(seed: 42)
        let junk = (0..<20_000).map { _ in UInt8.random(in: 0...255, using: &rng) }
        for split in Split.all {
            let r = run([.c(bytes: junk), .s(bytes: junk.reversed())], split: split)
            #expect(r.messages.isEmpty)
            #expect(r.verdict == .inconclusive)
            #expect(!r.findings.contains { $0.code == .plaintextData || $0.code == .starttlsMissing })
        }
    }
}
