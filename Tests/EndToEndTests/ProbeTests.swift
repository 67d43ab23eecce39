import Foundation
import SMTPCapTestSupport
import Testing

/// `smtpcap probe` against real servers in network namespaces (Tests/Scripts/probe-env.sh):
/// dnsmasq with an MX for example.org, aiosmtpd with STARTTLS on IPv4 and IPv6, the corpus's
/// masking proxy on the IPv4 path only, an MX that refuses connections, a server that drops
/// TLS, a domain without MX.
@Suite("smtpcap probe", .serialized)
struct ProbeTests {
    static let canRun = getuid() == 0 && E2E.which("ip") != nil && E2E.which("python3") != nil

    /// The environment, up for the body and down after it, whatever happens.
    static func withEnvironment(_ body: (_ ns: String, _ dir: URL) throws -> Void) throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-probe-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let script = E2E.repoRoot.appendingPathComponent("Tests/Scripts/probe-env.sh").path
        defer {
            _ = try? E2E.runProgram("/bin/bash", [script, "down", dir.path], timeout: 60)
            try? FileManager.default.removeItem(at: dir)
        }
        let up = try E2E.runProgram("/bin/bash", [script, "up", dir.path], timeout: 240)
        try #require(up.status == 0, "probe-env.sh up failed: \(up.stderr.suffix(2000))")
        let env = try String(contentsOf: dir.appendingPathComponent("env"), encoding: .utf8)
        let ns = try #require(env.split(separator: "\n").first { $0.hasPrefix("NS_C=") }.map { String($0.dropFirst(5)).trimmingCharacters(in: CharacterSet(charactersIn: "\"'")) })
        try body(ns, dir)
    }

    /// smtpcap run in the client namespace (its resolv.conf names the test's dnsmasq).
    static func probe(_ ns: String, _ arguments: [String], binary: String = E2E.binary) throws -> E2E.Result {
        try E2E.runProgram(E2E.which("ip")!, ["netns", "exec", ns, binary] + arguments, timeout: 120)
    }

    static func rows(_ r: E2E.Result) -> [[String: Any]] {
        (r.json.first { $0["type"] as? String == "probe" }?["rows"] as? [[String: Any]]) ?? []
    }

    /// Temporary captures probe made and left behind.
    static func leftovers() -> Set<String> {
        let tmp = FileManager.default.temporaryDirectory.path
        return Set(((try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []).filter { $0.hasPrefix("smtpcap-probe-") && !$0.hasPrefix("smtpcap-probe-\(getpid())") })
    }

    @Test(.enabled(if: canRun, "needs root, iproute2 and python3"), .timeLimit(.minutes(6)))
    func probeEveryPath() throws {
        let before = Self.leftovers()
        defer { #expect(Self.leftovers().subtracting(before).isEmpty, "probe left temporary files") }
        try Self.withEnvironment { ns, dir in
            // The acceptance: example.org over IPv4 (masked by the proxy) and IPv6 (TLS 1.3).
            let evidence = dir.appendingPathComponent("probe.pcap").path
            let r = try Self.probe(ns, ["probe", "example.org", "--json", "-w", evidence, "--timeout", "5"])
            #expect(r.status == 1, "\(r.stdout)\n\(r.stderr)")
            let rows = Self.rows(r)
            let mx = rows.filter { $0["mx"] as? String == "mx.example.org" }
            let v4 = mx.first { $0["ip_version"] as? Int == 4 }, v6 = mx.first { $0["ip_version"] as? Int == 6 }
            #expect(v4?["starttls_offered"] as? Bool == false && v4?["masked"] as? String == "XXXXXXXA", "\(rows)")
            #expect(v4?["verdict"] as? String == "stripped")
            #expect(v6?["starttls_offered"] as? Bool == true && v6?["tls_version"] as? String == "TLS1.3", "\(rows)")
            #expect(mx.count == 2 && mx.allSatisfy { $0["wire_evidence"] as? Bool == true && $0["preference"] as? Int == 10 })
            // The secondary MX refuses: a clear line per address, the others go on.
            let refused = rows.filter { $0["mx"] as? String == "refused.example.org" }
            #expect(refused.count == 2 && refused.allSatisfy { ($0["error"] as? String)?.contains("connection refused") == true }, "\(refused)")
            let summary = try #require(r.summary)
            #expect(((summary["findings"] as? [String: Int])?["starttls-inconsistent"] ?? 0) >= 1, "\(summary)")
            let verdict = r.json.first { $0["type"] as? String == "probe" }?["verdict"] as? String ?? ""
            #expect(verdict.contains("STARTTLS removed on the IPv4 path to mx.example.org") && verdict.contains("intact over IPv6"), "\(verdict)")
            let sessions = r.sessions
            #expect(sessions.count == 2 && sessions.allSatisfy { ($0["probe"] as? [String: Any])?["target"] as? String == "example.org" })
            // QUIT, its reply and the server's close are read before the socket closes: no reset.
            #expect(sessions.allSatisfy { $0["close"] as? String == "fin" }, "\(sessions.map { $0["close"] ?? "-" })")

            // The -w pcap read back: the same sessions and findings.
            let back = try E2E.run(["-r", evidence, "--json"])
            #expect(back.sessions.count == sessions.count)
            #expect(Set(back.sessions.compactMap { $0["verdict"] as? String }) == Set(sessions.compactMap { $0["verdict"] as? String }))
            #expect(back.summary?["findings"] as? [String: Int] == summary["findings"] as? [String: Int])

            // The text report ends with the verdict line.
            let text = try Self.probe(ns, ["probe", "example.org", "--timeout", "5", "--color", "never"])
            #expect(text.stdout.contains("  verdict   STARTTLS removed on the IPv4 path to mx.example.org (masked as XXXXXXXA); intact over IPv6"), "\(text.stdout)")
            // The EHLO name: the host's FQDN, or (none) the connection's address literal.
            #expect(text.stdout.contains("client    EHLO [198.51.100.10]") || text.stdout.contains("client    EHLO \(ProcessInfo.processInfo.hostName)"))

            // A host name (no MX: itself) over IPv6 only: clean, status 0; over IPv4 only: the
            // masking alone is a finding, status 1, no address failed.
            let clean = try Self.probe(ns, ["probe", "-6", "mx.example.org", "--json", "--timeout", "5"])
            #expect(clean.status == 0, "\(clean.stdout)")
            let masked = try Self.probe(ns, ["probe", "-4", "mx.example.org", "--json", "--timeout", "5"])
            #expect(masked.status == 1)
            #expect(Self.rows(masked).count == 1 && Self.rows(masked).allSatisfy { $0["error"] is NSNull })

            // -w where it cannot be written: one line, status 2, nothing probed.
            let unwritable = try Self.probe(ns, ["probe", "example.org", "-w", "/nonexistent/dir/p.pcap"])
            #expect(unwritable.status == 2 && unwritable.stdout.isEmpty)
            #expect(unwritable.stderr.split(separator: "\n").count == 1, "\(unwritable.stderr)")

            // A literal address; -4 and -6.
            let literal = try Self.probe(ns, ["probe", "2001:db8:2::25", "--json", "--timeout", "5"])
            #expect(literal.status == 0, "\(literal.stdout)")
            #expect(Self.rows(literal).first?["tls_version"] as? String == "TLS1.3")
            let only4 = try Self.probe(ns, ["probe", "-4", "example.org", "--json", "--timeout", "5"])
            #expect(!Self.rows(only4).isEmpty && Self.rows(only4).allSatisfy { $0["ip_version"] as? Int == 4 })
            let only6 = try Self.probe(ns, ["probe", "-6", "example.org", "--json", "--timeout", "5"])
            #expect(!Self.rows(only6).isEmpty && Self.rows(only6).allSatisfy { $0["ip_version"] as? Int == 6 })
            #expect(Self.rows(only6).first { $0["mx"] as? String == "mx.example.org" }?["starttls_offered"] as? Bool == true)

            // A server that drops TLS after its 220.
            let drop = try Self.probe(ns, ["probe", "droptls.example.net", "--json", "--timeout", "5"])
            #expect(drop.status == 1)
            #expect(Self.rows(drop).count == 2 && Self.rows(drop).allSatisfy { ($0["error"] as? String)?.contains("TLS handshake failed") == true }, "\(Self.rows(drop))")

            // A domain without MX: its own addresses.
            let nomx = try Self.probe(ns, ["probe", "nomx.example.com", "--json", "--timeout", "5"])
            let nomxRows = Self.rows(nomx)
            #expect(nomxRows.count == 2 && nomxRows.allSatisfy { $0["mx"] as? String == "nomx.example.com" && $0["preference"] is NSNull }, "\(nomxRows)")

            // A name that does not exist: one line, status 2.
            let bad = try Self.probe(ns, ["probe", "no-such-domain.example.org", "--timeout", "5"])
            #expect(bad.status == 2)
            #expect(bad.stdout.contains("no such domain (NXDOMAIN)"))

            // Without capture privileges: the sockets' view, said so.
            let copy = dir.appendingPathComponent("smtpcap").path
            try FileManager.default.copyItem(atPath: E2E.binary, toPath: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
            let setpriv = try #require(E2E.which("setpriv"))
            let user = try E2E.runProgram(E2E.which("ip")!, ["netns", "exec", ns, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                                                            copy, "probe", "example.org", "--json", "--timeout", "5"], timeout: 120)
            #expect(user.status == 1, "\(user.stdout)\n\(user.stderr)")
            let probeLine = user.json.first { $0["type"] as? String == "probe" }
            #expect((probeLine?["capture"] as? String)?.contains("wire evidence unavailable") == true, "\(user.stdout)")
            let userRows = Self.rows(user).filter { $0["mx"] as? String == "mx.example.org" }
            #expect(userRows.count == 2 && userRows.allSatisfy { $0["wire_evidence"] as? Bool == false })
            #expect(userRows.first { $0["ip_version"] as? Int == 4 }?["starttls_offered"] as? Bool == false)
        }
    }
}
