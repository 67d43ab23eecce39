import Findings
import Reporting
import SMTPCapCore
import SMTPCapTestSupport
@testable import SMTPMachine
import Testing

/// The envelope (MAIL FROM, RCPT TO per message), the flow identities (Community ID, uid),
/// EVE's signature table and the TLS report's counting, fed as the machine is fed.
@Suite("Envelope, identities, EVE signatures, TLS report")
struct EcosystemUnitTests {
    static let ehlo = [greeting, Step.c("EHLO client.example.net\r\n"), .s("250-mx.example.org\r\n250 8BITMIME\r\n")]

    static func transaction(from: String, to: [String], content: String = "Subject: x\r\n\r\nhello\r\n") -> [Step] {
        var steps: [Step] = [.c("MAIL FROM:\(from) SIZE=120 BODY=8BITMIME\r\n"), .s("250 2.1.0 Ok\r\n")]
        for rcpt in to { steps += [.c("RCPT TO:\(rcpt) NOTIFY=NEVER\r\n"), .s("250 2.1.5 Ok\r\n")] }
        return steps + [.c("DATA\r\n"), .s("354 go\r\n"), .c(content + ".\r\n"), .s("250 2.0.0 queued\r\n")]
    }

    @Test(arguments: Split.all)
    func envelopePerMessageInEverySplit(_ split: Split) {
        let steps = Self.ehlo
            + Self.transaction(from: "<bob@example.net>", to: ["<alice@Example.ORG>", "<carol@example.com.>"])
            + [.c("MAIL FROM:<x@y.z>\r\n"), .s("250 ok\r\n"), .c("RSET\r\n"), .s("250 ok\r\n")]
            + Self.transaction(from: "<>", to: ["postmaster@example.org"])
            + [.c("QUIT\r\n"), .s("221 bye\r\n")]
        let r = run(steps, split: split)
        #expect(r.heloName == "client.example.net")
        #expect(r.messages.count == 2)
        #expect(r.messages[0].mailFrom == "bob@example.net")
        #expect(r.messages[0].rcptTo == ["alice@Example.ORG", "carol@example.com."])
        // RSET dropped the transaction between; a null reverse path is an empty address.
        #expect(r.messages[1].mailFrom == "")
        #expect(r.messages[1].rcptTo == ["postmaster@example.org"])
        #expect(r.recipientDomains == ["example.org", "example.com"])
    }

    @Test func noAddressesKeepsDomainsOnlyAndHidesThemInTheTranscript() {
        let steps = Self.ehlo + Self.transaction(from: "<bob@example.net>", to: ["<alice@example.org>"])
        let r = run(steps, transcript: true, addresses: false)
        #expect(r.messages.count == 1)
        #expect(r.messages[0].mailFrom == nil)
        #expect(r.messages[0].rcptTo.isEmpty)
        #expect(r.recipientDomains == ["example.org"])
        let text = r.transcript!.map(\.text).joined(separator: "\n")
        #expect(!text.contains("bob@") && !text.contains("alice@"), "\(text)")
        let argument = "FROM:<bob@example.net> SIZE=120 BODY=8BITMIME"
        #expect(text.contains("MAIL <address withheld: \(argument.utf8.count) bytes>"))
    }

    @Test(arguments: Split.all)
    func noAddressesWithholdsThemInRepliesAndVRFY(_ split: Split) {
        let steps = Self.ehlo + [
            .c("MAIL FROM:<bob@example.net>\r\n"), .s("250 2.1.0 <bob@example.net>... Sender ok\r\n"),
            .c("RCPT TO:<alice@example.org>\r\n"), .s("550 5.1.1 <alice@example.org>: Recipient address rejected\r\n"),
            .c("VRFY carol@example.org\r\n"), .s("252 2.0.0 carol@example.org\r\n"), .c("QUIT\r\n"), .s("221 bye\r\n"),
        ]
        let r = run(steps, split: split, transcript: true, addresses: false)
        let text = r.transcript!.map(\.text).joined(separator: "\n")
        #expect(!text.contains("@"), "\(text)")
        #expect(text.contains("550 5.1.1 <address withheld>: Recipient address rejected"), "\(text)")
        #expect(text.contains("VRFY <address withheld>"), "\(text)")
        let kept = run(steps, split: split, transcript: true)
        #expect(kept.transcript!.map(\.text).joined(separator: "\n").contains("<alice@example.org>: Recipient"))
    }

    @Test func recipientsAreCappedAndCounted() {
        let to = (0..<(150)).map { "<user\($0)@d\($0 % 40).example>" }
        let r = run(Self.ehlo + Self.transaction(from: "<a@b.example>", to: to))
        #expect(r.messages[0].rcptTo.count == 100)
        #expect(r.messages[0].rcptNotListed == 50)
        #expect(r.messages[0].recipients == 150)
        #expect(r.recipientDomains.count == 32)
    }

    @Test func addressTextPerSessionIsBounded() {
        // 200 transactions of 3 recipients with 200-byte addresses: far past 16 KiB.
        let long = String(repeating: "x", count: 190)
        var steps = Self.ehlo
        for i in 0..<200 {
            steps += Self.transaction(from: "<\(long)\(i)@a.example>", to: (0..<3).map { "<\(long)\($0)@b.example>" })
        }
        let r = run(steps, split: .random(7))
        let kept = r.messages.reduce(0) { $0 + ($1.mailFrom?.utf8.count ?? 0) + $1.rcptTo.reduce(0) { $0 + $1.utf8.count } }
        #expect(kept <= 16 * 1024)
        #expect(r.messages.count == 200)
        #expect(r.messages.last!.rcptNotListed == 3)
    }

    @Test func addressOfArguments() {
        func address(_ s: String) -> String? { Envelope.address(in: Array(s.utf8)[...]).map { String(decoding: $0, as: UTF8.self) } }
        #expect(address("FROM:<a@b> SIZE=1") == "a@b")
        #expect(address("FROM: <a@b>") == "a@b")
        #expect(address("TO:c@d NOTIFY=NEVER") == "c@d")
        #expect(address("FROM:<>") == "")
        #expect(address("FROM:<unterminated@x") == "unterminated@x")
        #expect(address("FROM") == nil)
        #expect(address("TO:") == nil)
    }

    // MARK: - Flow identities

    static func v4(_ s: String) -> IPAddress {
        let p = s.split(separator: ".").map { UInt32($0)! }
        return IPAddress(ipv4: p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3])
    }

    static func v6(_ groups: [UInt16]) -> IPAddress {
        var high: UInt64 = 0, low: UInt64 = 0
        for (i, g) in groups.enumerated() {
            if i < 4 { high |= UInt64(g) << (48 - 16 * UInt64(i)) } else { low |= UInt64(g) << (48 - 16 * UInt64(i - 4)) }
        }
        return IPAddress(ipv6High: high, low: low)
    }

    /// The Community ID specification's published TCP vectors (corelight/community-id-spec,
    /// baseline), seeds 0 and 1, in both directions.
    @Test func communityIDMatchesTheSpecificationVectors() {
        let vectors: [(Endpoint, Endpoint, String, String)] = [
            (Endpoint(address: Self.v4("1.2.3.4"), port: 1122), Endpoint(address: Self.v4("5.6.7.8"), port: 3344),
             "1:wCb3OG7yAFWelaUydu0D+125CLM=", "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="),
            (Endpoint(address: Self.v4("128.232.110.120"), port: 34855), Endpoint(address: Self.v4("66.35.250.204"), port: 80),
             "1:LQU9qZlK+B5F3KDmev6m5PMibrg=", "1:3V71V58M3Ksw/yuFALMcW0LAHvc="),
            (Endpoint(address: Self.v6([0x2001, 0x470, 0xe5bf, 0xdead, 0x4957, 0x2174, 0xe82c, 0x4887]), port: 63943),
             Endpoint(address: Self.v6([0x2607, 0xf8b0, 0x400c, 0xc03, 0, 0, 0, 0x1a]), port: 25),
             "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=", "1:eJYTW6AOzFLlSUoESovMjnu7rMw="),
        ]
        for (a, b, seed0, seed1) in vectors {
            #expect(FlowIdentity.communityID(a, b, seed: 0) == seed0)
            #expect(FlowIdentity.communityID(b, a, seed: 0) == seed0)
            #expect(FlowIdentity.communityID(a, b, seed: 1) == seed1)
        }
    }

    @Test func base64FollowsRFC4648() {
        // RFC 4648 section 10's test vectors.
        let cases = ["": "", "f": "Zg==", "fo": "Zm8=", "foo": "Zm9v", "foob": "Zm9vYg==", "fooba": "Zm9vYmE=", "foobar": "Zm9vYmFy"]
        for (plain, encoded) in cases { #expect(FlowIdentity.base64(Array(plain.utf8)) == encoded) }
    }

    @Test func uidDependsOnTheFlowAndItsStartOnly() {
        let c = Endpoint(address: Self.v4("198.51.100.10"), port: 40000), s = Endpoint(address: Self.v4("203.0.113.25"), port: 25)
        let t = Timestamp(seconds: 1_700_000_000, nanoseconds: 5)
        let a = FlowIdentity(client: c, server: s, start: t)
        #expect(a.uid == FlowIdentity(client: c, server: s, start: t).uid)
        #expect(a.uid.hasPrefix("S") && a.uid.utf8.count == 17)
        #expect(a.uid != FlowIdentity(client: c, server: s, start: Timestamp(seconds: 1_700_000_000, nanoseconds: 6)).uid)
        #expect(a.uid != FlowIdentity(client: s, server: c, start: t).uid)
        #expect(a.flowID < 1 << 51)
    }

    // MARK: - EVE signatures

    @Test func everyFindingCodeHasItsOwnSignature() {
        let rules = FindingCode.allCases.map { EVESignatures.rule($0) }
        #expect(Set(rules.map(\.id)).count == FindingCode.allCases.count)
        #expect(rules.allSatisfy { (1...3).contains($0.severity) && !$0.title.isEmpty })
        // Ids are fixed: these two are in published rule sets' terms, never renumbered.
        #expect(EVESignatures.rule(.starttlsMissing).id == 9_250_001)
        #expect(EVESignatures.rule(.starttlsStripped).id == 9_250_003)
    }

    // MARK: - TLS report

    @Test func tlsReportCountsSessionsPerRecipientDomain() throws {
        let plaintext = run(Self.ehlo + Self.transaction(from: "<a@x.example>", to: ["<b@example.org>", "<c@example.net>"]))
        let masked = run([greeting, .c("EHLO c\r\n"), .s("250-mx.example.org\r\n250-XXXXXXXA\r\n250 8BITMIME\r\n")]
                         + Self.transaction(from: "<a@x.example>", to: ["<d@example.org>"]))
        // The same server without recipients (as an encrypted session shows it): it joins the
        // domains learned for the server, not a policy of its own.
        let quiet = run([greeting, .c("EHLO c\r\n"), .s("250-mx.example.org\r\n250 8BITMIME\r\n"), .c("QUIT\r\n"), .s("221 bye\r\n")])
        #expect(plaintext.verdict == .plaintext && masked.verdict == .stripped)
        var report = TLSReport()
        for r in [quiet, plaintext, masked] { report.add(r) }
        #expect(report.failedSessions == 2)
        let json = report.json(TLSReportSettings(path: "-", organization: "Org", contact: "c@example.org"))
        #expect(json.contains(#""organization-name":"Org""#))
        // example.org: both failures; example.net: the plaintext one.
        #expect(json.contains(#""policy-domain":"example.org"},"summary":{"total-successful-session-count":"#))
        #expect(json.contains(#""failure-reason-code":"starttls-masked""#))
        #expect(json.contains(#""failure-reason-code":"starttls-missing""#))
        #expect(json.contains(#""result-type":"starttls-not-supported""#))
        if quiet.verdict != .inconclusive {
            #expect(!json.contains(#""policy-domain":"mx.example.org""#), "a session without recipients joins the domains learned for its server")
        }
    }
}
