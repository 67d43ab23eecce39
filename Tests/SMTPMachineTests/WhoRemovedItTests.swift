import SMTPCapTestSupport
import Comparison
import Findings
import SMTPCapCore
import SMTPMachine
import TLSHandshake
import Testing

/// A plaintext delivery to a server with this greeting and EHLO first line; `starttls`
/// decides whether the reply offers it.
func delivery(banner: String, ehloFirst: String, starttls: Bool, split: Split = .whole, transcript: Bool = false) -> SessionRecord {
    var ehlo = "250-\(ehloFirst)\r\n250-SIZE 157286400\r\n250-8BITMIME\r\n"
    if starttls { ehlo += "250-STARTTLS\r\n" }
    ehlo += "250 SMTPUTF8\r\n"
    return run([
        .s("220 \(banner)\r\n"),
        .c("EHLO client.example.net\r\n"), .s(ehlo),
        .c("MAIL FROM:<bob@example.net>\r\n"), .s("250 OK\r\n"),
        .c("RCPT TO:<alice@example.org>\r\n"), .s("250 OK\r\n"),
        .c("DATA\r\n"), .s("354 go ahead\r\n"),
        .c("Subject: hi\r\n\r\nhello\r\n.\r\n"), .s("250 queued\r\n"),
        .c("QUIT\r\n"), .s("221 bye\r\n"),
    ], split: split, transcript: transcript)
}

@Suite("Provider knowledge")
struct ProviderKnowledgeTests {
    @Test func theDataFileParsesAndEveryEntryCitesASource() {
        let names = ProviderKnowledge.providers.map(\.name)
        #expect(names.count >= 4)
        for needed in ["Google", "Microsoft", "Yahoo"] {
            #expect(names.contains { $0.contains(needed) }, "no \(needed) entry in providers.json")
        }
        let sources = ProviderKnowledge.sourcesPerProvider
        for name in names { #expect((sources[name] ?? 0) >= 1, "\(name) cites no https source") }
    }

    @Test(arguments: [
        ("mx.google.com", "mx.google.com ESMTP af79cd13be357-7c548b7c7desi241161485a.388 - gsmtp",
         "mx.google.com at your service, [5.161.254.101]", "Google"),
        ("AM4PEPF00027A6C.mail.protection.outlook.com",
         "AM4PEPF00027A6C.mail.protection.outlook.com Microsoft ESMTP MAIL Service ready at Thu, 3 Dec 2026 13:54:36 +0000",
         "AM4PEPF00027A6C.mail.protection.outlook.com Hello [198.51.100.10]", "Microsoft"),
        ("mta4265.mail.ne1.yahoo.com", "mta4265.mail.ne1.yahoo.com ESMTP ready", "mta4265.mail.ne1.yahoo.com", "Yahoo"),
        ("gmx.net", "gmx.net (mxgmx117) Nemesis ESMTP Service ready", "gmx.net Hello client.example.net [198.51.100.10]", "GMX"),
    ])
    func publishedFormatsAreRecognised(_ host: String, _ greeting: String, _ ehlo: String, _ provider: String) throws {
        let p = try #require(ProviderKnowledge.provider(host: host, greeting: greeting, ehloLine: ehlo))
        #expect(p.name.contains(provider))
        // Either one seen alone is enough (a masked greeting leaves the EHLO line).
        #expect(ProviderKnowledge.provider(host: host, greeting: nil, ehloLine: ehlo)?.name == p.name)
        #expect(ProviderKnowledge.provider(host: host, greeting: greeting, ehloLine: nil)?.name == p.name)
    }

    @Test(arguments: [
        // Private servers, on-premises Exchange, look-alike names, an old banner of a real host.
        ("mail.example.net", "mail.example.net ESMTP Postfix (Debian/GNU)", "mail.example.net"),
        ("EXCH01.corp.example", "EXCH01.corp.example Microsoft ESMTP MAIL Service ready at Thu, 3 Dec 2026 13:54:36 +0000",
         "EXCH01.corp.example Hello [198.51.100.10]"),
        ("mx.google.com.evil.example", "mx.google.com.evil.example ESMTP x1 - gsmtp", "mx.google.com.evil.example at your service, [1.2.3.4]"),
        ("mx.google.com", "mx.google.com ESMTP Postfix", "mx.google.com"),
        ("mta1125.mail.ir2.yahoo.com", "mta1125.mail.ir2.yahoo.com ESMTP YSmtpProxy service ready", "mta1125.mail.ir2.yahoo.com"),
    ])
    func othersAreNot(_ host: String, _ greeting: String, _ ehlo: String) {
        #expect(ProviderKnowledge.provider(host: host, greeting: greeting, ehloLine: ehlo) == nil)
    }

    @Test(arguments: Split.all)
    func aProviderReplyWithoutSTARTTLSIsStripped(_ split: Split) {
        let r = delivery(banner: "mx.google.com ESMTP a1si2 - gsmtp", ehloFirst: "mx.google.com at your service, [198.51.100.10]",
                         starttls: false, split: split)
        #expect(r.provider == "Google")
        #expect(r.verdict == .stripped)
        let stripped = r.findings.filter { $0.code == .starttlsStripped }
        #expect(stripped.count == 1)
        #expect(stripped.first?.message == "mx.google.com (Google) always offers STARTTLS: something on the path removed it")
        #expect(r.findings.contains { $0.code == .starttlsMissing })
    }

    @Test func theSameServerWithSTARTTLSIsNotAFinding() {
        let r = delivery(banner: "mx.google.com ESMTP a1si2 - gsmtp", ehloFirst: "mx.google.com at your service, [198.51.100.10]",
                         starttls: true)
        #expect(r.provider == "Google")
        #expect(!r.findings.contains { $0.code == .starttlsStripped || $0.code == .starttlsMissing })
    }

    @Test(arguments: Split.all)
    func aPrivateServerWithoutSTARTTLSIsOnlyMissing(_ split: Split) {
        let r = delivery(banner: "mail.example.net ESMTP Postfix (Debian/GNU)", ehloFirst: "mail.example.net", starttls: false, split: split)
        #expect(r.provider == nil)
        #expect(r.verdict == .plaintext)
        #expect(r.findings.contains { $0.code == .starttlsMissing })
        #expect(!r.findings.contains { $0.code == .starttlsStripped })
    }

    @Test(arguments: [
        ("*.google.com", "MX.Google.COM", true), ("*.google.com", "google.com", false), ("*", "", true),
        ("a*b*c", "aXXbYYc", true), ("a*b*c", "aXXbYYcd", false), ("mx.google.com", "mx.google.com.", false),
        ("* - gsmtp", "x - gsmtp", true), ("**", "anything", true), ("a*", "", false),
    ])
    func globs(_ pattern: String, _ text: String, _ matches: Bool) {
        #expect(MailProviderGlobProbe.matches(pattern, text) == matches)
    }
}

@Suite("Path evidence")
struct PathEvidenceTests {
    func withPath(_ r: SessionRecord, server: [(UInt8, Bool)], client: UInt8) -> SessionRecord {
        var r = r
        r.serverStats.path = PathObservation()
        for (i, (ttl, syn)) in server.enumerated() {
            r.serverStats.path.observe(ttl: ttl, syn: syn, data: !syn, frame: UInt64(i + 2))
        }
        r.clientStats.path = PathObservation()
        r.clientStats.path.observe(ttl: client, syn: true, data: false, frame: 1)
        r.findings = []
        SessionFindings.evaluate(&r)
        return r
    }

    static let plain = delivery(banner: "mx.example.org ESMTP", ehloFirst: "mx.example.org", starttls: true)

    @Test func aOneHopWobbleIsNotAFinding() {
        let r = withPath(Self.plain, server: [(50, true), (51, false), (50, false), (51, false)], client: 64)
        #expect(r.serverStats.path.ttlChanges == 1)
        #expect(!r.findings.contains { $0.code == .serverTTLChanged })
    }

    @Test func aPacketFromAnotherBoxIsAFinding() throws {
        let r = withPath(Self.plain, server: [(57, true), (57, false), (57, false), (250, false), (57, false)], client: 64)
        let f = try #require(r.findings.first { $0.code == .serverTTLChanged })
        #expect(f.frame == 5)
        #expect(f.message.contains("TTL 250") && f.message.contains("came with 57"))
    }

    @Test func hopsAndVantage() {
        let atClient = PathEvidence(withPath(Self.plain, server: [(52, true), (52, false)], client: 64))
        #expect(atClient.serverHops == 12 && atClient.serverInitialTTL == 64 && atClient.clientHops == 0)
        #expect(atClient.vantage == .client)
        let atServer = PathEvidence(withPath(Self.plain, server: [(255, true), (255, false)], client: 115))
        #expect(atServer.serverHops == 0 && atServer.clientHops == 13 && atServer.vantage == .server)
        let between = PathEvidence(withPath(Self.plain, server: [(60, true)], client: 120))
        #expect(between.vantage == .between)
    }
}

/// Records as a capture would give them, for the summary: a family, a hop count, an offer.
func summaryRecord(id: UInt64, v6: Bool, serverTTL: UInt8, offered: Bool, mss: UInt16 = 1460,
                   certificate: (String, String)? = nil, options: [UInt8]? = nil, synAckSeen: Bool = true) -> SessionRecord {
    var r = delivery(banner: "mx.example.org ESMTP", ehloFirst: "mx.example.org", starttls: offered)
    r.id = id
    if v6 {
        r.client = Endpoint(address: IPAddress(ipv6High: 0x2001_0db8_0001_0000, low: 0x10), port: 40_000)
        r.server = Endpoint(address: IPAddress(ipv6High: 0x2001_0db8_0002_0000, low: 0x25), port: 25)
    }
    let bytes = options ?? [2, 4, UInt8(mss >> 8), UInt8(mss & 0xff), 4, 2, 1, 3, 3, 7]
    r.serverStats.path = PathObservation()
    if synAckSeen {
        r.serverStats.path.observe(ttl: serverTTL, syn: true, data: false, frame: 2)
        r.serverStats.path.synOptions = TCPOptionsPrint(bytes.span)
    } else {
        r.serverStats.path.observe(ttl: serverTTL, syn: false, data: true, frame: 2)
    }
    r.clientStats.path = PathObservation()
    r.clientStats.path.observe(ttl: 64, syn: true, data: false, frame: 1)
    if let (sha, key) = certificate {
        var tls = TLSFacts()
        tls.started = true
        tls.certificate = CertificateFacts(subject: "CN=mx.example.org", issuer: "CN=ca", subjectAlternativeNames: [],
                                           notBefore: 0, notAfter: .max, selfSigned: false, chainLength: 2,
                                           sha256: sha, keyType: key, keyBits: key == "rsa" ? 2048 : 256)
        r.tls = tls
    }
    return r
}

@Suite("Cross-session path and certificate findings")
struct CrossSessionTests {
    @Test func strippedOverAShorterPathIsPathInconsistent() throws {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 64, offered: false))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440))
        let i = try #require(s.pathInconsistencies.first)
        #expect(s.pathInconsistencies.count == 1)
        #expect(i.without.hops == 0 && i.with.hops == 1 && i.without.ipVersion == 4 && i.with.ipVersion == 6)
        #expect(i.message == "IPv4 answered 0 hops away (TTL 64) without STARTTLS, IPv6 from 1 hop away (TTL 63) with it: a box on the IPv4 path answers for mx.example.org")
        #expect(s.countsByCode.first { $0.code == .pathInconsistent }?.count == 1)
    }

    @Test func theSamePathExplainsNothing() {
        var s = CaptureSummary()
        // Missing on IPv4 and offered on IPv6 over the same distance and the same SYN-ACK
        // (IPv6's MSS is 20 less for the same link): the server itself differs per family.
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: false))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440))
        #expect(s.pathInconsistencies.isEmpty)
        #expect(s.inconsistencies.count == 1)
    }

    @Test func aDifferentSynAckIsAnotherPath() throws {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: false, mss: 1380))
        s.add(summaryRecord(id: 2, v6: false, serverTTL: 63, offered: true))
        let i = try #require(s.pathInconsistencies.first)
        #expect(i.message.contains("SYN-ACK mss=1380"))
    }

    @Test func aSessionWithoutItsSynAckIsNotAnotherPath() {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: false, synAckSeen: false))
        s.add(summaryRecord(id: 2, v6: false, serverTTL: 63, offered: true))
        #expect(s.pathInconsistencies.isEmpty)
    }

    @Test func moreHopsWithoutSTARTTLSIsAnotherServerNotABox() {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 52, offered: false))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 53, offered: true, mss: 1440))
        #expect(s.pathInconsistencies.isEmpty)
    }

    @Test func optionsTheClientNegotiatedAreNotTheServers() {
        var s = CaptureSummary()
        // The same server's SYN-ACK to a client that offered no timestamps and no SACK.
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: false, options: [2, 4, 0x05, 0xb4, 1, 3, 3, 7]))
        s.add(summaryRecord(id: 2, v6: false, serverTTL: 63, offered: true))
        #expect(s.pathInconsistencies.isEmpty)
    }

    @Test func aReplyAGapDamagedIsNotMissing() {
        var s = CaptureSummary()
        var damaged = summaryRecord(id: 1, v6: false, serverTTL: 64, offered: false)
        for i in damaged.ehlo.indices { damaged.ehlo[i].complete = false }
        s.add(damaged)
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440))
        #expect(s.pathInconsistencies.isEmpty && s.inconsistencies.isEmpty)
    }

    @Test func interceptedAndDirectCertificatesDiffer() throws {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 64, offered: true, certificate: ("aa11", "rsa")))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440, certificate: ("bb22", "rsa")))
        s.add(summaryRecord(id: 3, v6: false, serverTTL: 64, offered: true, certificate: ("aa11", "rsa")))
        let i = try #require(s.certificateInconsistencies.first)
        #expect(s.certificateInconsistencies.count == 1)
        #expect(Set([i.first.sha256, i.second.sha256]) == ["aa11", "bb22"])
        #expect(i.message.contains("aa11") && i.message.contains("bb22"))
    }

    @Test func anRSAAndAnECDSACertificateAreNotInconsistent() {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: true, certificate: ("aa11", "rsa")))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440, certificate: ("cc33", "ecdsa")))
        #expect(s.certificateInconsistencies.isEmpty)
    }

    @Test func aRotatedCertificateSeenOnBothPathsIsNotInconsistent() {
        var s = CaptureSummary()
        s.add(summaryRecord(id: 1, v6: false, serverTTL: 63, offered: true, certificate: ("old", "rsa")))
        s.add(summaryRecord(id: 2, v6: true, serverTTL: 63, offered: true, mss: 1440, certificate: ("new", "rsa")))
        s.add(summaryRecord(id: 3, v6: false, serverTTL: 63, offered: true, certificate: ("new", "rsa")))
        #expect(s.certificateInconsistencies.isEmpty)
    }

    @Test func mergedSummariesKeepThePathsAndCertificates() {
        var a = CaptureSummary(), b = CaptureSummary()
        a.add(summaryRecord(id: 1, v6: false, serverTTL: 64, offered: false, certificate: ("aa11", "rsa")))
        b.add(summaryRecord(id: 1, v6: true, serverTTL: 63, offered: true, mss: 1440, certificate: ("bb22", "rsa")))
        a.merge(b)
        #expect(a.pathInconsistencies.count == 1)
        #expect(a.certificateInconsistencies.count == 1)
        #expect(a.totalFindings >= 2)
    }
}

@Suite("Comparing two captures")
struct ComparisonTests {
    static func side(masked: Bool, clientAddress: UInt32, shift: Int64, id: UInt64 = 1) -> SessionRecord {
        var r = run([
            .s("220 mx.example.org ESMTP\r\n"),
            .c("EHLO client.example.net\r\n"),
            .s("250-mx.example.org\r\n250-PIPELINING\r\n250-\(masked ? "XXXXXXXA" : "STARTTLS")\r\n250 8BITMIME\r\n"),
            .c("MAIL FROM:<bob@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n"),
            .s("250 OK\r\n250 OK\r\n354 go\r\n"),
            .c("hello\r\n.\r\n"), .s("250 queued as 1234\r\n"),
            .c("QUIT\r\n"), .s("221 bye\r\n"),
        ], transcript: true)
        r.id = id
        r.client = Endpoint(address: IPAddress(ipv4: clientAddress), port: 40_000 + UInt16(clientAddress & 0xff))
        r.start = Timestamp(seconds: r.start.seconds + shift, nanoseconds: 0)
        return r
    }

    @Test func aMaskedLineIsNamedAndTheTranslatedClientToo() throws {
        // A on the sender's side, B on the server's, B's clock an hour ahead; the proxy between
        // them is B's client.
        let a = [Self.side(masked: true, clientAddress: 0xc633_640a, shift: 0)]
        let b = [Self.side(masked: false, clientAddress: 0xcb00_7101, shift: 3600)]
        let result = Comparison.compare(a, b)
        #expect(result.pairs.count == 1 && result.unpairedA.isEmpty && result.unpairedB.isEmpty)
        #expect(abs(result.clockOffset - 3600) < 0.001)
        let d = result.pairs[0].differences
        let masked = try #require(d.first { $0.what == "EHLO reply line 3" })
        // Without a hop difference, A is the sender's side: the server's text is B's.
        #expect(masked.message == "EHLO reply line 3: server sent `250-STARTTLS`, client received `250-XXXXXXXA`")
        #expect(masked.a == "250-XXXXXXXA" && masked.b == "250-STARTTLS" && masked.direction == "server-to-client")
        #expect(d.contains { $0.what == "client address" })
        #expect(!result.identical)
    }

    @Test func identicalSessionsHaveNoDifferences() {
        let a = [Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0)]
        let result = Comparison.compare(a, a)
        #expect(result.pairs.count == 1)
        #expect(result.pairs[0].differences.isEmpty)
        #expect(result.identical)
    }

    @Test func aDeletedLineIsNamed() throws {
        var b = Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0)
        var a = b
        a.transcript!.removeAll { $0.text == "250-STARTTLS" }
        b.id = 1
        let result = Comparison.compare([a], [b])
        let d = try #require(result.pairs.first?.differences.first)
        #expect(d.message == "EHLO reply line 3: server sent `250-STARTTLS`, client did not receive it (deleted on the path)")
    }

    @Test func sessionsWithoutAPartnerAreListed() {
        let a = [Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0)]
        var other = run([.s("220 other.example ESMTP\r\n"), .c("HELO x\r\n"), .s("250 ok\r\n")], transcript: true)
        other.start = Timestamp(seconds: other.start.seconds + 86_400 * 30, nanoseconds: 0)
        let result = Comparison.compare(a, [other])
        #expect(result.pairs.isEmpty)
        #expect(result.unpairedA.count == 1 && result.unpairedB.count == 1)
    }

    @Test func repeatedIdenticalSessionsPairInOrder() {
        // A monitoring loop: the same dialogue every 0.6 s; compared with itself, and with a
        // copy whose client address a NAT changed.
        let list = (0..<10).map { i -> SessionRecord in
            var r = Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0, id: UInt64(i + 1))
            r.start = Timestamp(seconds: r.start.seconds + Int64(i * 6 / 10), nanoseconds: Int32((i * 6 % 10) * 100_000_000))
            r.client.port = 40_000 + UInt16(i)
            return r
        }
        let same = Comparison.compare(list, list)
        #expect(same.identical)
        #expect(same.pairs.map { $0.a.record.id } == same.pairs.map { $0.b.record.id })
        let natted = list.map { r -> SessionRecord in
            var r = r
            r.client = Endpoint(address: IPAddress(ipv4: 0xcb00_7101), port: r.client.port + 10_000)
            return r
        }
        let result = Comparison.compare(list, natted)
        #expect(abs(result.clockOffset) < 0.001)
        #expect(result.pairs.count == 10)
        #expect(result.pairs.allSatisfy { $0.a.record.id == $0.b.record.id })
    }

    @Test func eachPairHasItsOwnServerSide() throws {
        // Mail both ways through one firewall: A inside, B outside. Outbound, B is nearer the
        // server; inbound, A is.
        func withHops(_ r: SessionRecord, server: UInt8, client: UInt8) -> SessionRecord {
            var r = r
            r.serverStats.path = PathObservation()
            r.serverStats.path.observe(ttl: server, syn: true, data: false, frame: 2)
            r.clientStats.path = PathObservation()
            r.clientStats.path.observe(ttl: client, syn: true, data: false, frame: 1)
            return r
        }
        let outA = withHops(Self.side(masked: true, clientAddress: 0x0a00_0005, shift: 0, id: 1), server: 60, client: 64)
        let outB = withHops(Self.side(masked: false, clientAddress: 0xcb00_7101, shift: 0, id: 1), server: 61, client: 63)
        var inA = withHops(Self.side(masked: false, clientAddress: 0xc633_640a, shift: 100, id: 2), server: 64, client: 55)
        var inB = withHops(Self.side(masked: true, clientAddress: 0xc633_640a, shift: 100, id: 2), server: 63, client: 56)
        inA.serverName = "inbound.example"
        inB.serverName = "inbound.example"
        let result = Comparison.compare([outA, inA], [outB, inB])
        #expect(result.pairs.count == 2)
        let outbound = try #require(result.pairs.first { $0.a.record.id == 1 })
        let inbound = try #require(result.pairs.first { $0.a.record.id == 2 })
        #expect(outbound.serverSide == .b && inbound.serverSide == .a)
        let lineOut = try #require(outbound.differences.first { $0.what == "EHLO reply line 3" })
        let lineIn = try #require(inbound.differences.first { $0.what == "EHLO reply line 3" })
        #expect(lineOut.message.hasSuffix("server sent `250-STARTTLS`, client received `250-XXXXXXXA`"))
        #expect(lineIn.message.hasSuffix("server sent `250-STARTTLS`, client received `250-XXXXXXXA`"))
    }

    @Test func aCaptureOfOneDirectionSaysSo() throws {
        let a = Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0)
        var b = a
        b.transcript!.removeAll { $0.direction == .serverToClient }
        b.serverStats.bytes = 0
        let result = Comparison.compare([a], [b])
        let d = try #require(result.pairs.first?.differences.first)
        #expect(d.what == "capture" && d.message.hasPrefix("B holds none of the server's bytes"))
    }

    @Test func pipelinedRepliesBelongToTheirCommands() {
        let r = Self.side(masked: false, clientAddress: 0xc633_640a, shift: 0)
        let placed = Comparison.placedForTesting(r.transcript!)
        let sections = placed.filter { $0.0 == .serverToClient }.map(\.1)
        #expect(sections == ["banner", "EHLO reply line 1", "EHLO reply line 2", "EHLO reply line 3", "EHLO reply line 4",
                             "reply to MAIL", "reply to RCPT", "reply to DATA", "reply to end of data", "reply to QUIT"])
    }
}
