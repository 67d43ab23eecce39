import Foundation
import SMTPCapTestSupport
import Testing

/// Issue: who removed STARTTLS. Real captures from captures/make-path-captures.sh (and the
/// bundled stripped-ipv4-intact-ipv6.pcap); their facts are in captures/expected.json.
@Suite("Who removed STARTTLS")
struct WhoRemovedItCaptureTests {
    static func capture(_ name: String) -> String { E2E.captures.appendingPathComponent(name).path }

    static func findings(_ session: [String: Any]) -> [[String: Any]] { session["findings"] as? [[String: Any]] ?? [] }

    /// The providers whose formats provider-banners.pcap imitates, by the name each server
    /// declares (captures/tools/provider_server.py); iCloud has no entry in providers.json.
    static let imitated: [String: String?] = [
        "mx.google.com": "Google",
        "AM4PEPF00027A6C.mail.protection.outlook.com": "Microsoft 365 / Outlook.com",
        "mta4265.mail.ne1.yahoo.com": "Yahoo / AOL",
        "iCloud": nil,
    ]

    @Test func aProviderWhoseSTARTTLSLineWasDeletedIsStrippedAndNamed() throws {
        let result = try E2E.run(["-r", Self.capture("provider-banners.pcap"), "--json"])
        #expect(result.status == 1)
        #expect(result.sessions.count == 8)
        for s in result.sessions {
            let name = try #require(s["server_name"] as? String)
            let expected = try #require(Self.imitated[name], "unexpected server \(name)")
            #expect(s["provider"] as? String == expected, "\(name)")
            let stripped = Self.findings(s).filter { $0["code"] as? String == "starttls-stripped" }
            if let provider = expected {
                #expect(s["verdict"] as? String == "stripped", "\(name)")
                #expect(stripped.count == 1)
                #expect(stripped.first?["message"] as? String == "\(name) (\(provider)) always offers STARTTLS: something on the path removed it")
                #expect((s["verdict_reason"] as? String)?.contains(provider) == true)
            } else {
                #expect(s["verdict"] as? String == "plaintext", "\(name)")
                #expect(stripped.isEmpty)
            }
        }
    }

    @Test func privateServersWithoutSTARTTLSAreNotStripped() throws {
        let result = try E2E.run(["-r", Self.capture("private-no-starttls.pcap"), "--json"])
        #expect(result.sessions.count == 4)
        for s in result.sessions {
            #expect(s["verdict"] as? String == "plaintext")
            #expect(s["provider"] is NSNull)
            let codes = Self.findings(s).compactMap { $0["code"] as? String }
            #expect(codes.contains("starttls-missing") && !codes.contains("starttls-stripped"))
        }
        let summary = try #require(result.summary)
        // The same on both families: nothing inconsistent.
        #expect((summary["path_inconsistent"] as? [Any])?.isEmpty == true)
        #expect((summary["starttls_inconsistent"] as? [Any])?.isEmpty == true)
    }

    @Test func theBundledCaptureShowsBothHopDistances() throws {
        let json = try E2E.run(["-r", Self.capture("stripped-ipv4-intact-ipv6.pcap"), "--json"])
        let list = try #require(json.summary?["path_inconsistent"] as? [[String: Any]])
        #expect(list.count == 1)
        let without = try #require(list.first?["without_starttls"] as? [String: Any])
        let with = try #require(list.first?["with_starttls"] as? [String: Any])
        #expect(without["ip_version"] as? Int == 4 && without["hops"] as? Int == 0 && without["ttl"] as? Int == 64)
        #expect(with["ip_version"] as? Int == 6 && with["hops"] as? Int == 1 && with["ttl"] as? Int == 63)
        #expect((json.summary?["findings"] as? [String: Int])?["path-inconsistent"] == 1)
        let text = try E2E.run(["-r", Self.capture("stripped-ipv4-intact-ipv6.pcap")])
        #expect(text.stdout.contains("path-inconsistent IPv4 answered 0 hops away (TTL 64) without STARTTLS, IPv6 from 1 hop away (TTL 63) with it: a box on the IPv4 path answers for mx.example.org"))
    }

    /// The certificates captures/expected.json records per family (from tshark).
    static func certificates(_ file: String) throws -> [Int: Set<String>] {
        let entry = try #require(loadCorpus().first { $0.file == file })
        var out: [Int: Set<String>] = [:]
        for s in entry.sessions {
            if let sha = (s["certificate"] as? [String: Any])?["sha256"] as? String, let v = s["ip_version"] as? Int {
                out[v, default: []].insert(sha)
            }
        }
        return out
    }

    @Test func anInterceptedSessionAndADirectOneAreCertificateInconsistent() throws {
        let truth = try Self.certificates("intercepted-ipv4-direct-ipv6.pcap")
        let v4 = try #require(truth[4]?.first), v6 = try #require(truth[6]?.first)
        #expect(truth[4]?.count == 1 && truth[6]?.count == 1 && v4 != v6)
        let result = try E2E.run(["-r", Self.capture("intercepted-ipv4-direct-ipv6.pcap"), "--json"])
        let list = try #require(result.summary?["certificate_inconsistent"] as? [[String: Any]])
        #expect(list.count == 1)
        let shown = Set((list.first?["certificates"] as? [[String: Any]] ?? []).compactMap { $0["sha256"] as? String })
        #expect(shown == [v4, v6])
        let message = list.first?["message"] as? String ?? ""
        #expect(message.contains(v4) && message.contains(v6))
        #expect(result.status == 1)
    }

    @Test func aDualCertificateServerIsNotInconsistent() throws {
        let truth = try Self.certificates("dual-certificate.pcap")
        #expect(truth[4] != truth[6], "the capture must show two certificates")
        let result = try E2E.run(["-r", Self.capture("dual-certificate.pcap"), "--json"])
        #expect((result.summary?["certificate_inconsistent"] as? [Any])?.isEmpty == true)
        #expect((result.summary?["findings"] as? [String: Int])?["certificate-inconsistent"] == nil)
    }

    @Test(.enabled(if: E2E.which("tshark") != nil, "tshark is not installed"))
    func aRewrittenServerPacketIsServerTTLChanged() throws {
        // tshark names the rewritten packet: the server's with a TTL unlike the others'.
        let out = try E2E.runProgram(E2E.which("tshark")!, ["-r", Self.capture("ttl-rewritten.pcap"), "-Y",
                                                            "tcp.srcport == 25 && ip.ttl == 254", "-T", "fields", "-e", "frame.number"])
        let frames = out.stdout.split(separator: "\n").compactMap { Int($0) }
        #expect(frames.count == 1)
        let result = try E2E.run(["-r", Self.capture("ttl-rewritten.pcap"), "--json"])
        let s = try #require(result.sessions.first)
        let f = Self.findings(s).filter { $0["code"] as? String == "server-ttl-changed" }
        #expect(f.count == 1)
        #expect(f.first?["frame"] as? Int == frames.first)
        // The capture it was cut from has no such finding.
        let original = try E2E.run(["-r", Self.capture("private-no-starttls.pcap"), "--json"])
        #expect(original.sessions.allSatisfy { s in !Self.findings(s).contains { $0["code"] as? String == "server-ttl-changed" } })
    }
}

@Suite("smtpcap compare")
struct CompareCommandTests {
    static let client = WhoRemovedItCaptureTests.capture("compare-client.pcap")
    static let server = WhoRemovedItCaptureTests.capture("compare-server.pcap")

    @Test func theMaskedLineIsShownAndTheCleanSessionIsNot() throws {
        let result = try E2E.run(["compare", Self.client, Self.server, "--json"])
        #expect(result.status == 1, "\(result.stderr)")
        let pairs = result.json.filter { $0["type"] as? String == "pair" }
        #expect(pairs.count == 3)
        #expect(result.json.filter { $0["type"] as? String == "unpaired" }.isEmpty)
        // The pairs are those the capture run recorded (captures/expected.json, from the proxy's log).
        let entry = try #require(loadCorpus().first { $0.file == "compare-client.pcap" })
        let truth = try #require(entry.entry["pairs"] as? [[String: Any]])
        let expectedPairs = Set(truth.compactMap { p -> String? in
            guard let a = (p["this"] as? [String: Any])?["client"] as? String,
                  let b = (p["other"] as? [String: Any])?["client"] as? String else { return nil }
            return a + " = " + b
        })
        let shownPairs = Set(pairs.compactMap { p -> String? in
            guard let a = (p["a"] as? [String: Any])?["client"] as? String, let b = (p["b"] as? [String: Any])?["client"] as? String else { return nil }
            return a + " = " + b
        })
        #expect(shownPairs == expectedPairs)
        for p in pairs {
            let client = (p["a"] as? [String: Any])?["client"] as? String ?? ""
            let differences = p["differences"] as? [[String: Any]] ?? []
            if client.hasPrefix("[") {
                #expect(differences.isEmpty, "the clean IPv6 session differs: \(differences)")
                continue
            }
            let lines = differences.filter { ($0["what"] as? String)?.hasPrefix("EHLO reply line") == true }
            #expect(lines.count == 1)
            let line = try #require(lines.first)
            #expect(line["direction"] as? String == "server-to-client")
            #expect(line["b"] as? String == "250-STARTTLS")
            if let masked = line["a"] as? String {
                #expect(masked == "250-XXXXXXXA")
                #expect((line["message"] as? String)?.hasSuffix("server sent `250-STARTTLS`, client received `250-XXXXXXXA`") == true)
            } else {
                #expect((line["message"] as? String)?.contains("client did not receive it (deleted on the path)") == true)
            }
            #expect(differences.contains { $0["what"] as? String == "client address" })
        }
        let summary = try #require(result.json.last)
        #expect(summary["type"] as? String == "summary" && summary["pairs"] as? Int == 3)
        #expect(summary["pairs_with_differences"] as? Int == 2 && summary["server_side"] as? String == "b")
    }

    @Test func textNamesTheMaskedLine() throws {
        let result = try E2E.run(["compare", Self.client, Self.server])
        #expect(result.status == 1)
        #expect(result.stdout.contains("EHLO reply line 4: server sent `250-STARTTLS`, client received `250-XXXXXXXA`"))
        #expect(result.stdout.contains("3 pair(s): 2 with differences, 1 identical"))
    }

    @Test func theSameCaptureTwiceAgrees() throws {
        let result = try E2E.run(["compare", Self.client, Self.client])
        #expect(result.status == 0, "\(result.stdout)")
        #expect(result.stdout.contains("the two captures agree"))
    }

    @Test(arguments: [["compare", "/nonexistent.pcap", "x"], ["compare", "only-one"], ["compare", "--bogus", "a", "b"]])
    func errorsAreOneLineAndStatusTwo(_ arguments: [String]) throws {
        var args = arguments
        if args.count == 3 && args[2] == "x" { args[2] = Self.client }
        let result = try E2E.run(args)
        #expect(result.status == 2)
        #expect(result.stderr.split(separator: "\n").count == 1, "\(result.stderr)")
        #expect(result.stdout.isEmpty)
    }

    @Test func aFileWithoutSMTPSaysWhatItHeld() throws {
        // The live VXLAN-GPE traffic of the corpus would do; a capture of UDP made here is simpler.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-compare-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let udp = dir.appendingPathComponent("udp.pcap")
        // One Ethernet/IPv4/UDP frame to port 53, classic pcap, little-endian.
        var bytes: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0]
        let frame: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0,
                              0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 198, 51, 100, 10, 203, 0, 113, 53,
                              0x9c, 0x40, 0, 53, 0, 8, 0, 0]
        bytes += [1, 0, 0, 0, 0, 0, 0, 0, UInt8(frame.count), 0, 0, 0, UInt8(frame.count), 0, 0, 0] + frame
        try Data(bytes).write(to: udp)
        let result = try E2E.run(["compare", Self.client, udp.path])
        #expect(result.status == 2)
        #expect(result.stderr.contains("holds no SMTP session") && result.stderr.contains("UDP"), "\(result.stderr)")
    }

    @Test func helpExplainsTheExitStatus() throws {
        let result = try E2E.run(["compare", "--help"])
        #expect(result.status == 0)
        #expect(result.stdout.contains("EXIT STATUS") && result.stdout.contains("smtpcap compare"))
    }
}
