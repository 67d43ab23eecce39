import Foundation
import SMTPCapTestSupport
import Testing

/// The corpus in captures/, made by real mail software (captures/make-captures.sh), with
/// its ground truth in captures/expected.json; tshark as an independent oracle.
struct CorpusCase: CustomStringConvertible, @unchecked Sendable {
    var entry: [String: Any]
    var file: String { entry["file"] as? String ?? "?" }
    var path: String { E2E.captures.appendingPathComponent(file).path }
    /// Rotated files read as one capture (the entry's facts are those of their merge), else
    /// the one file.
    var paths: [String] {
        (entry["merge"] as? [String]).map { $0.map { E2E.captures.appendingPathComponent($0).path } } ?? [path]
    }
    /// The `-r` arguments: rotated files in reverse order, as a careless glob might give them.
    var readArguments: [String] { paths.reversed().flatMap { ["-r", $0] } }
    var sessions: [[String: Any]] { entry["sessions"] as? [[String: Any]] ?? [] }
    var description: String { file }
}

/// A session's identity beyond its client: the tunnels (kind and identifier) and the interface,
/// in the words of captures/expected.json and of smtpcap's JSON alike.
func sessionKey(_ s: [String: Any], smtpcap: Bool) -> String {
    let client = s["client"] as? String ?? ""
    let interface = s["interface"] as? String ?? "-"
    let layers = (s["tunnel"] as? [[String: Any]] ?? []).map { l in smtpcap ? TunnelFact(smtpcap: l) : TunnelFact(truth: l) }
    return "\(client) \(interface) \(layers.map(\.description).joined(separator: "/"))"
}

/// One tunnel layer, as expected.json (from tshark) and smtpcap name it.
struct TunnelFact: Equatable, CustomStringConvertible {
    var type: String
    var id: Int?
    var outer: String?

    init(truth l: [String: Any]) {
        let t = l["type"] as? String ?? "?"
        switch t {
        case "erspan": type = (l["erspan_type"] as? Int) == 3 ? "erspan-iii" : "erspan-ii"
        case "ipip": type = "ip-in-ip"
        default: type = t
        }
        id = (l["vni"] ?? l["key"] ?? l["session_id"]) as? Int ?? (l["labels"] as? [Int])?.first
        outer = l["outer"] as? String
    }

    init(smtpcap l: [String: Any]) {
        type = l["type"] as? String ?? "?"
        id = (l["vni"] ?? l["key"] ?? l["session"] ?? l["label"]) as? Int
        outer = l["outer"] as? String
    }

    var description: String { "\(type):\(id.map(String.init) ?? "-"):\(outer ?? "-")" }
}

func loadCorpus() -> [CorpusCase] {
    guard let data = try? Data(contentsOf: E2E.captures.appendingPathComponent("expected.json")),
          let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [] }
    return list.map { CorpusCase(entry: $0) }
}

/// The fake credentials the corpus carries (captures/README.md).
let corpusSecrets = ["S3cr3t-Hunter2", "AGFsaWNlQGV4YW1wbGUub3JnAFMzY3IzdC1IdW50ZXIy", "UzNjcjN0LUh1bnRlcjI="]

/// The path captures' extra facts (captures/make-path-captures.sh, from tshark): the server's
/// declared name, the TTLs and SYN-ACK options, TTL changes, the leaf certificate.
func checkPathAndCertificate(_ session: [String: Any], _ expected: [String: Any], file: String) {
    if let name = expected["server_name"] as? String {
        #expect(session["server_name"] as? String == name, "\(file): server name")
    }
    guard let truth = expected["path"] as? [String: Any] else { return }
    let path = session["path"] as? [String: Any] ?? [:]
    #expect(path["server_ttl"] as? Int == truth["server_ttl"] as? Int, "\(file): SYN-ACK TTL")
    #expect(path["client_ttl"] as? Int == truth["client_ttl"] as? Int, "\(file): SYN TTL")
    #expect(path["syn_ack"] as? String == truth["syn_ack"] as? String, "\(file): SYN-ACK options")
    #expect(path["server_ttl_changes"] as? Int == truth["server_ttl_changes"] as? Int, "\(file): TTL changes")
    if let ttl = truth["server_ttl"] as? Int {
        let initial = [32, 64, 128, 255].first { $0 >= ttl }!
        #expect(path["server_hops"] as? Int == initial - ttl, "\(file): hops")
    }
    let certificate = (session["tls"] as? [String: Any])?["certificate"] as? [String: Any]
    if let cert = expected["certificate"] as? [String: Any] {
        #expect(certificate?["sha256"] as? String == cert["sha256"] as? String, "\(file): certificate SHA-256")
        #expect(certificate?["key_type"] as? String == cert["key_type"] as? String, "\(file): key type")
        #expect(certificate?["key_bits"] as? Int == cert["key_bits"] as? Int, "\(file): key size")
        #expect(certificate?["chain_length"] as? Int == cert["chain_length"] as? Int, "\(file): chain length")
    } else {
        #expect(certificate == nil, "\(file): no certificate in the clear")
    }
}

@Suite("Capture corpus (captures/)")
struct CaptureCorpusTests {
    static let cases = loadCorpus()

    @Test func corpusIsPresent() {
        #expect(Self.cases.count >= 20)
    }

    @Test(arguments: cases)
    func agreesWithGroundTruth(_ c: CorpusCase) throws {
        let result = try E2E.run(c.readArguments + ["--json"])
        #expect(result.status == 0 || result.status == 1, "\(result.stderr)")
        let byClient = Dictionary(result.sessions.map { (sessionKey($0, smtpcap: true), $0) }, uniquingKeysWith: { a, _ in a })
        #expect(result.sessions.count == c.sessions.count, "\(c.file): \(byClient.keys.sorted())")
        for expected in c.sessions {
            let client = sessionKey(expected, smtpcap: false)
            guard let session = byClient[client] else {
                Issue.record("\(c.file): no session for \(client) among \(byClient.keys.sorted())")
                continue
            }
            if let sizes = expected["message_sizes"] as? [Int] {
                let mine = (session["messages"] as? [[String: Any]] ?? []).compactMap { $0["bytes"] as? Int }
                #expect(mine == sizes, "\(c.file) \(client): message sizes")
            }
            #expect(session["server"] as? String == expected["server"] as? String)
            #expect(session["ip_version"] as? Int == expected["ip_version"] as? Int)
            let mine = SessionFacts(smtpcap: session), truth = SessionFacts(manifest: expected)
            #expect(mine.matches(truth), "\(c.file) \(client): smtpcap \(mine) vs expected \(truth)")
            let masked = (session["ehlo"] as? [[String: Any]] ?? []).contains { $0["masked"] != nil }
            #expect(masked == (expected["masked_starttls"] as? Bool ?? false), "\(c.file)")
            // The verdict follows from the facts.
            let verdict = session["verdict"] as? String
            let codes = (session["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
            if masked {
                #expect(verdict == "stripped")
                #expect(codes.contains("starttls-stripped"))
            } else if truth.plaintextDataMessages > 0 {
                // A recognised large provider without STARTTLS is stripped (the provider
                // captures are checked one by one in WhoRemovedItCaptureTests).
                #expect(verdict == (session["provider"] is String ? "stripped" : "plaintext"), "\(c.file)")
            } else if truth.tlsHandshake {
                #expect(verdict == "encrypted", "\(c.file)")
            }
            #expect(codes.filter { $0 == "plaintext-data" }.count == truth.plaintextDataMessages)
            // Bytes missing from the capture are a finding of their own, exactly when there are gaps.
            let gaps = session["gaps"] as? Int ?? -1
            #expect(codes.contains("capture-gap") == (gaps > 0), "\(c.file): gaps \(gaps), findings \(codes)")
            #expect(codes.contains("plaintext-auth") == truth.plaintextAuth)
            checkPathAndCertificate(session, expected, file: c.file)
        }
        // Packets and IP fragments, where the corpus counted them.
        let capture = result.summary?["capture"] as? [String: Any]
        if let packets = c.entry["packets"] as? Int {
            #expect(result.summary?["packets"] as? Int == packets, "\(c.file)")
        }
        if let fragments = c.entry["fragments"] as? [String: Int] {
            #expect(capture?["ip_fragments"] as? Int == fragments.values.reduce(0, +), "\(c.file)")
            #expect(capture?["ip_fragments_left_over"] as? Int == 0, "\(c.file): every fragment makes a datagram")
            #expect(capture?["ip_fragment_conflicts"] as? Int == 0)
        }
        #expect(capture?["malformed"] as? Int == 0, "\(c.file)")
    }

    @Test(.enabled(if: E2E.which("tshark") != nil, "tshark is not installed"), arguments: cases.filter { $0.entry["merge"] == nil })
    func agreesWithTshark(_ c: CorpusCase) throws {
        // tshark's reading: per client port, ServerHello versions and EHLO replies with STARTTLS.
        let tshark = E2E.which("tshark")!
        let hellos = try E2E.runProgram(tshark, ["-r", c.path, "-Y", "tls.handshake.type == 2", "-T", "fields",
                                                 "-e", "tcp.dstport", "-e", "tls.handshake.extensions.supported_version",
                                                 "-e", "tls.handshake.version"])
        var version: [Int: String] = [:]
        for line in hellos.stdout.split(separator: "\n") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            guard f.count >= 3, let port = Int(f[0]) else { continue }
            let code = f[1].isEmpty ? f[2] : f[1]
            version[port] = ["0x0304": "TLS1.3", "0x0303": "TLS1.2", "0x0302": "TLS1.1", "0x0301": "TLS1.0"][code.split(separator: ",").first.map(String.init) ?? ""]
        }
        let ehlo = try E2E.runProgram(tshark, ["-r", c.path, "-Y", "smtp.response.code == 250 && smtp.rsp.parameter contains \"STARTTLS\"",
                                               "-T", "fields", "-e", "tcp.dstport"])
        #expect(hellos.status == 0 && ehlo.status == 0, "tshark: \(hellos.stderr)\(ehlo.stderr)")
        let offeredPorts = Set(ehlo.stdout.split(separator: "\n").compactMap { Int($0) })
        let truthOffered = c.sessions.contains { ($0["ehlo_starttls_offered"] as? [Bool] ?? []).contains(true) }
        #expect(offeredPorts.isEmpty == !truthOffered, "\(c.file): tshark saw STARTTLS offered on \(offeredPorts)")

        let result = try E2E.run(["-r", c.path, "--json"])
        for session in result.sessions {
            let client = session["client"] as? String ?? ""
            guard let port = Int(client.split(separator: ":").last ?? "") else { continue }
            let tls = session["tls"] as? [String: Any]
            if let v = version[port] {
                #expect(tls?["version"] as? String == v, "\(c.file) \(client): tshark says \(v)")
            } else {
                #expect(tls?["version"] as? String == nil, "\(c.file) \(client): tshark saw no ServerHello")
            }
            let starttls = session["starttls"] as? [String: Any]
            // tshark reassembles only what it can; where it sees STARTTLS offered, so must smtpcap.
            if offeredPorts.contains(port) {
                #expect(starttls?["offered"] as? Bool == true, "\(c.file) \(client): tshark saw STARTTLS offered")
            }
        }
    }

    @Test func noSecretOrBodyInAnyOutputMode() throws {
        for c in Self.cases {
            for mode in [[], ["-v"], ["--json"], ["--json", "-v"], ["-q"]] {
                let r = try E2E.run(["-r", c.path] + mode)
                for secret in corpusSecrets {
                    #expect(!r.stdout.contains(secret), "\(c.file) \(mode) leaks \(secret)")
                    #expect(!r.stderr.contains(secret))
                }
                // Message content (the Subject and body lines the corpus sends) never shows.
                #expect(!r.stdout.contains("Subject:"), "\(c.file) \(mode)")
            }
        }
    }

    @Test func defaultCaptureTellsTheStory() throws {
        // make run's capture: STARTTLS masked on IPv4, intact on IPv6, same server.
        let r = try E2E.run(["-r", E2E.captures.appendingPathComponent("default.pcap").path, "--json"])
        #expect(r.status == 1)
        let verdicts = Dictionary(r.sessions.map { ($0["ip_version"] as? Int ?? 0, $0["verdict"] as? String ?? "") }, uniquingKeysWith: { a, _ in a })
        #expect(verdicts == [4: "stripped", 6: "encrypted"])
        let summary = try #require(r.summary)
        let inconsistent = try #require(summary["starttls_inconsistent"] as? [[String: Any]])
        #expect(inconsistent.count == 1)
        #expect(inconsistent.first?["offered_ip_versions"] as? [Int] == [6])
        #expect(inconsistent.first?["missing_ip_versions"] as? [Int] == [4])
        let text = try E2E.run(["-r", E2E.captures.appendingPathComponent("default.pcap").path])
        #expect(text.stdout.contains("masked as XXXXXXXA: a middlebox is stripping it"))
        #expect(text.stdout.contains("starttls-inconsistent"))
    }
}
