import Foundation
import SMTPCapTestSupport
import Testing

/// What joins smtpcap to the tools around it, checked with those tools: the Community ID
/// against the `communityid` package, EVE lines against Suricata's schema, the TLS report with
/// parsedmarc's parser, evidence pcaps read back (and counted by tshark), gzip captures,
/// the envelope against tshark's reading of the same commands.
@Suite("Ecosystem: identities, EVE, TLS report, evidence, gzip")
struct EcosystemTests {
    static let schema = E2E.repoRoot.deletingLastPathComponent().appendingPathComponent("shared/schemas/suricata-eve.schema.json")
    static var haveSchema: Bool { FileManager.default.fileExists(atPath: schema.path) }
    static let scripts = E2E.repoRoot.appendingPathComponent("Tests/Scripts")

    /// Every capture in captures/ and, when present, the peer captures.
    static let captures: [String] = {
        let fm = FileManager.default
        var out: [String] = []
        for dir in [E2E.captures, E2E.peerCaptures] {
            let names = (try? fm.contentsOfDirectory(atPath: dir.path)) ?? []
            out += names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { dir.appendingPathComponent($0).path }
        }
        return out
    }()

    static func python(_ script: String, _ arguments: [String], stdin: Data? = nil) throws -> E2E.Result {
        try E2E.runProgram("/usr/bin/env", ["python3", scripts.appendingPathComponent(script).path] + arguments, stdin: stdin, timeout: 300)
    }

    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-eco-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    static func findingCodes(_ s: [String: Any]) -> [String] {
        (s["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
    }

    // MARK: - Command line conventions

    @Test func versionHelpAndSubcommands() throws {
        let source = try String(contentsOf: E2E.repoRoot.appendingPathComponent("Sources/smtpcap/Version.swift"), encoding: .utf8)
        let version = try #require(source.split(separator: "\"").dropFirst().first.map(String.init))
        let r = try E2E.run(["--version"])
        #expect(r.status == 0)
        #expect(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == version)
        let help = try E2E.run(["--help"])
        #expect(help.stdout.contains("SUBCOMMANDS") && help.stdout.contains("probe") && help.stdout.contains("compare"))
        for option in ["--format", "--tls-report", "--evidence", "--no-addresses", "--organization", "--contact"] {
            #expect(help.stdout.contains(option), "\(option) in --help")
        }
        let probeHelp = try E2E.run(["help", "probe"])
        #expect(probeHelp.status == 0 && probeHelp.stdout.contains("USAGE: smtpcap probe"))
    }

    @Test func completionScriptsCoverOptionsAndSubcommands() throws {
        for shell in ["bash", "zsh", "fish"] {
            let r = try E2E.run(["--generate-completion-script", shell])
            #expect(r.status == 0)
            #expect(r.stdout.contains("tls-report") && r.stdout.contains("probe") && r.stdout.contains("compare"), "\(shell)")
        }
        // The bash script parses.
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let script = dir.appendingPathComponent("smtpcap.bash")
        try Data(try E2E.run(["--generate-completion-script", "bash"]).stdout.utf8).write(to: script)
        let check = try E2E.runProgram("/bin/bash", ["-n", script.path])
        #expect(check.status == 0, "\(check.stderr)")
    }

    /// The checked-in man page and completions (`make man`) know every option the binary has.
    @Test func manPageAndCompletionsAreCurrent() throws {
        let man = try String(contentsOf: E2E.repoRoot.appendingPathComponent("doc/smtpcap.1"), encoding: .utf8)
        let bash = try String(contentsOf: E2E.repoRoot.appendingPathComponent("doc/completions/smtpcap.bash"), encoding: .utf8)
        for command in [[], ["probe"], ["compare"]] {
            let help = try E2E.run(command + ["--help"]).stdout
            let options = Set(help.split(whereSeparator: { " ,\n[]()=".contains($0) })
                .filter { $0.hasPrefix("--") && $0.count > 2 && $0.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" } }
                .map(String.init))
            #expect(options.count > 5, "\(command): \(options)")
            for option in options {
                #expect(man.contains("Fl -\(option.dropFirst(2))"), "doc/smtpcap.1 lacks \(command) \(option): run make man")
                #expect(bash.contains(option), "doc/completions/smtpcap.bash lacks \(command) \(option): run make man")
            }
        }
        for section in ["DESCRIPTION", "FINDINGS", "EXIT STATUS", "EXAMPLES", "FILES"] {
            #expect(man.contains(".Sh \(section)"), "\(section)")
        }
    }

    @Test func badOptionCombinationsAreOneLineErrors() throws {
        let capture = E2E.captures.appendingPathComponent("default.pcap").path
        for args in [["--format", "xml"], ["--json", "--format", "eve"], ["--organization", "X"],
                     ["--evidence", "/tmp/x", "-r", "-"]] {
            let r = try E2E.run(["-r", capture] + args)
            #expect(r.status == 2 && r.stderr.split(separator: "\n").count == 1 && r.stderr.hasPrefix("smtpcap: "), "\(args): \(r.stderr)")
        }
    }

    // MARK: - Community ID and uid

    @Test(arguments: captures)
    func communityIDMatchesThePackage(_ capture: String) throws {
        let r = try E2E.run(["-r", capture, "--json", "--ports", "25,587,465,2525,8000"])
        try #require(r.status == 0 || r.status == 1, "\(r.stderr)")
        guard !r.sessions.isEmpty else { return }
        for s in r.sessions {
            #expect((s["uid"] as? String)?.hasPrefix("S") == true)
            #expect((s["community_id"] as? String)?.hasPrefix("1:") == true)
        }
        let check = try Self.python("community-id.py", [], stdin: Data(r.stdout.utf8))
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.hasPrefix("ok \(r.sessions.count) sessions"), "\(check.stdout)")
        // The uid is stable from run to run.
        let again = try E2E.run(["-r", capture, "--json", "--ports", "25,587,465,2525,8000"])
        #expect(again.sessions.map { $0["uid"] as? String } == r.sessions.map { $0["uid"] as? String })
    }

    // MARK: - Envelope

    /// The envelope smtpcap reports per message is what tshark reads in the MAIL and RCPT
    /// commands of the same connection.
    @Test(arguments: captures.filter { $0.hasPrefix(E2E.captures.path) })
    func envelopeAgreesWithTshark(_ capture: String) throws {
        guard let tshark = E2E.which("tshark") else { Issue.record("tshark is missing (make test-deps)"); return }
        let r = try E2E.run(["-r", capture, "--json"])
        let withMessages = r.sessions.filter { !($0["messages"] as? [Any] ?? []).isEmpty }
        guard !withMessages.isEmpty else { return }
        // Pipelined commands share a frame: tshark joins their fields with the aggregator (a tab).
        let t = try E2E.runProgram(tshark, ["-r", capture, "-d", "udp.port==8472,vxlan", "-Y", "smtp.req.command",
                                           "-T", "fields", "-E", "separator=|", "-E", "aggregator=\t", "-e", "tcp.srcport", "-e", "tcp.dstport",
                                           "-e", "smtp.req.command", "-e", "smtp.req.parameter"])
        var commands: [String: (from: [String], to: [String])] = [:]
        for line in t.stdout.split(separator: "\n") {
            let f = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
            guard f.count == 4 else { continue }
            let verbs = f[2].split(separator: "\t", omittingEmptySubsequences: false)
            let parameters = f[3].split(separator: "\t", omittingEmptySubsequences: false)
            for (verb, parameter) in zip(verbs, parameters) {
                let address = Self.address(String(parameter))
                if verb.uppercased() == "MAIL" { commands[f[0] + ">" + f[1], default: ([], [])].from.append(address) }
                if verb.uppercased() == "RCPT" { commands[f[0] + ">" + f[1], default: ([], [])].to.append(address) }
            }
        }
        for s in withMessages {
            let client = (s["client"] as! String).split(separator: ":").last!, server = (s["server"] as! String).split(separator: ":").last!
            let seen = commands["\(client)>\(server)"] ?? ([], [])
            for m in s["messages"] as? [[String: Any]] ?? [] {
                let from = try #require(m["mail_from"] as? String, "\(capture): a message without mail_from")
                #expect(seen.from.contains(from), "\(capture): mail_from \(from) not among tshark's \(seen.from)")
                for to in m["rcpt_to"] as? [String] ?? [] {
                    #expect(seen.to.contains(to), "\(capture): rcpt_to \(to) not among tshark's \(seen.to)")
                }
                #expect((m["rcpt_to"] as? [String] ?? []).count <= seen.to.count)
            }
        }
    }

    static func address(_ parameter: String) -> String {
        guard let colon = parameter.firstIndex(of: ":") else { return parameter }
        var rest = parameter[parameter.index(after: colon)...].drop { $0 == " " }
        if rest.first == "<" {
            rest = rest.dropFirst()
            return String(rest.prefix { $0 != ">" })
        }
        return String(rest.prefix { $0 != " " })
    }

    @Test func noAddressesLeavesNoAddressInAnyOutput() throws {
        let capture = E2E.captures.appendingPathComponent("default.pcap").path
        let plain = try E2E.run(["-r", capture, "--json"])
        #expect(plain.stdout.contains("bob@example.net"), "the capture carries the address")
        for format in [["--json", "-v"], ["-v"], ["--format", "eve"]] {
            let r = try E2E.run(["-r", capture, "--no-addresses"] + format)
            #expect(r.status == 1)
            #expect(!r.stdout.contains("@example."), "\(format): \(r.stdout)")
        }
        let text = try E2E.run(["-r", capture])
        #expect(text.stdout.contains("from <bob@example.net> to <alice@example.org>"))
    }

    // MARK: - EVE

    @Test(.enabled(if: haveSchema, "../shared/schemas is not present"))
    func everyEVELineValidatesAgainstSuricatasSchema() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var all = ""
        for capture in Self.captures {
            let eve = try E2E.run(["-r", capture, "--format", "eve"])
            #expect(eve.status == 0 || eve.status == 1, "\(capture): \(eve.stderr)")
            let json = try E2E.run(["-r", capture, "--json"])
            let lines = eve.json
            #expect(lines.count == eve.stdout.split(separator: "\n").count, "\(capture): every line is JSON")
            // One stats event, last; the flow fields on every other event.
            #expect(lines.last?["event_type"] as? String == "stats", "\(capture)")
            #expect(lines.filter { $0["event_type"] as? String == "stats" }.count == 1)
            for e in lines.dropLast() {
                for key in ["timestamp", "flow_id", "community_id", "src_ip", "src_port", "dest_ip", "dest_port", "proto", "app_proto"] {
                    #expect(e[key] != nil, "\(capture): \(e["event_type"] ?? "?") without \(key)")
                }
            }
            // An alert per finding of each session, carrying its code and the session's
            // community id; cross-session findings add their own.
            let alerts = lines.filter { $0["event_type"] as? String == "alert" }
            let perSession = json.sessions.reduce(0) { $0 + Self.findingCodes($1).count }
            let summaryCodes = ["starttls-inconsistent", "path-inconsistent", "certificate-inconsistent"]
            let crossSession = alerts.filter { a in
                let codes = ((a["alert"] as? [String: Any])?["metadata"] as? [String: Any])?["smtpcap_code"] as? [String] ?? []
                return codes.contains { summaryCodes.contains($0) } && (((a["alert"] as? [String: Any])?["metadata"] as? [String: Any])?["smtpcap_verdict"] == nil)
            }
            #expect(alerts.count - crossSession.count == perSession, "\(capture)")
            let ids = Set(json.sessions.compactMap { $0["community_id"] as? String })
            #expect(lines.dropLast().allSatisfy { ids.contains($0["community_id"] as? String ?? "") }, "\(capture)")
            all += eve.stdout
        }
        let file = dir.appendingPathComponent("eve.json")
        try Data(all.utf8).write(to: file)
        let check = try Self.python("validate-eve.py", [Self.schema.path, file.path])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(check.stdout.hasPrefix("ok "), "\(check.stdout)")
        #expect(check.stdout.contains("alert=") && check.stdout.contains("tls=") && check.stdout.contains("smtp="), "\(check.stdout)")
    }

    // MARK: - TLS report

    @Test(arguments: captures.filter { $0.hasPrefix(E2E.captures.path) })
    func parsedmarcParsesTheTLSReport(_ capture: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("report.json")
        let r = try E2E.run(["-r", capture, "--json", "--tls-report", report.path, "--organization", "Example Mail Ops",
                             "--contact", "tls-reports@example.net"])
        try #require(r.status == 0 || r.status == 1, "\(r.stderr)")
        let parsed = try Self.python("parse-tlsrpt.py", [report.path])
        try #require(parsed.status == 0, "\(capture): \(parsed.stdout)\(parsed.stderr)")
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Any])
        #expect(doc["organization_name"] as? String == "Example Mail Ops")
        #expect(doc["contact_info"] as? String == "tls-reports@example.net")
        let policies = doc["policies"] as? [[String: Any]] ?? []
        let failed = policies.reduce(0) { $0 + ($1["failed_session_count"] as? Int ?? 0) }
        let detailed = policies.reduce(0) { total, p in
            total + (p["failure_details"] as? [[String: Any]] ?? []).reduce(0) { $0 + ($1["failed_session_count"] as? Int ?? 0) }
        }
        // Failures are the sessions smtpcap calls not encrypted, once per recipient domain.
        // (Sessions to the submission ports are not deliveries to an MX: left out.)
        let delivery = r.sessions.filter { s in !["587", "465"].contains((s["server"] as? String)?.split(separator: ":").last.map(String.init) ?? "") }
        let notEncrypted = delivery.filter { ["plaintext", "stripped"].contains($0["verdict"] as? String ?? "") }
        let expected = notEncrypted.reduce(0) { total, s in
            let domains = Set((s["messages"] as? [[String: Any]] ?? []).flatMap { $0["rcpt_to"] as? [String] ?? [] }
                .compactMap { $0.split(separator: "@").last.map { $0.lowercased() } })
            return total + max(1, domains.count)
        }
        #expect(failed == expected, "\(capture): \(failed) failures reported, \(expected) expected")
        #expect(detailed == failed, "\(capture): failure details add up")
        let encrypted = delivery.filter { $0["verdict"] as? String == "encrypted" }.count
        let succeeded = policies.reduce(0) { $0 + ($1["successful_session_count"] as? Int ?? 0) }
        #expect(succeeded >= encrypted)
        #expect(policies.allSatisfy { $0["policy_type"] as? String == "no-policy-found" })
        for p in policies {
            for d in p["failure_details"] as? [[String: Any]] ?? [] {
                #expect(["starttls-not-supported", "validation-failure"].contains(d["result_type"] as? String ?? ""))
                #expect(d["sending_mta_ip"] != nil && d["receiving_ip"] != nil)
            }
        }
        if !delivery.filter({ $0["verdict"] as? String != "inconclusive" }).isEmpty {
            let starts = delivery.filter { $0["verdict"] as? String != "inconclusive" }.compactMap { $0["start"] as? String }.sorted()
            #expect((doc["begin_date"] as? String).map { starts.first!.hasPrefix(String($0.dropLast())) } == true,
                    "\(doc["begin_date"] ?? "-") vs \(starts.first!)")
        }
    }

    @Test func theBundledCaptureReportsTheMaskedSession() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let report = dir.appendingPathComponent("r.json")
        _ = try E2E.run(["-r", E2E.captures.appendingPathComponent("default.pcap").path, "-q", "--tls-report", report.path])
        let parsed = try Self.python("parse-tlsrpt.py", [report.path])
        let doc = try #require(try JSONSerialization.jsonObject(with: Data(parsed.stdout.utf8)) as? [String: Any])
        let policy = try #require((doc["policies"] as? [[String: Any]])?.first)
        #expect(policy["policy_domain"] as? String == "example.org")
        #expect(policy["failed_session_count"] as? Int == 1)
        #expect(policy["successful_session_count"] as? Int == 1, "the IPv6 session to the same MX, encrypted")
        let detail = try #require((policy["failure_details"] as? [[String: Any]])?.first)
        #expect(detail["failure_reason_code"] as? String == "starttls-masked")
        #expect(detail["receiving_mx_hostname"] as? String == "mx.example.org")
        #expect(detail["sending_mta_ip"] as? String == "198.51.100.10")
        #expect(detail["receiving_ip"] as? String == "203.0.113.25")
    }

    // MARK: - Evidence

    static let evidenceCaptures = ["default.pcap", "ipv4-fragments.pcap", "vxlan-two-vnis.pcap", "multi-interface.pcapng", "gre.pcap", "ipv6-fragments.pcap"]
        .map { E2E.captures.appendingPathComponent($0).path }.filter { FileManager.default.fileExists(atPath: $0) }
        + ["zeek-smtp.pcap", "arkime-smtp-data-250.pcap"].map { E2E.peerCaptures.appendingPathComponent($0).path }
        .filter { FileManager.default.fileExists(atPath: $0) }

    @Test(arguments: evidenceCaptures)
    func evidenceReadsBackToTheSameFindings(_ capture: String) throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let evidence = dir.appendingPathComponent("evidence")
        let r = try E2E.run(["-r", capture, "--json", "--evidence", evidence.path])
        #expect(r.status == 1, "\(capture): \(r.stderr)")
        let withFindings = r.sessions.filter { !Self.findingCodes($0).isEmpty }
        try #require(!withFindings.isEmpty)
        let files = try FileManager.default.contentsOfDirectory(atPath: evidence.path).sorted()
        #expect(files.count == 2 * withFindings.count, "\(files)")
        for s in withFindings {
            let name = "session-\(s["id"]!)-\(s["verdict"]!)-\(s["uid"]!)"
            let pcap = evidence.appendingPathComponent(name + ".pcap"), txt = evidence.appendingPathComponent(name + ".txt")
            #expect(FileManager.default.fileExists(atPath: txt.path), "\(name).txt")
            let report = (try? String(contentsOf: txt, encoding: .utf8)) ?? ""
            #expect(report.contains(s["verdict"] as! String) && !report.contains("\u{1b}["), "\(name).txt: \(report)")
            let again = try E2E.run(["-r", pcap.path, "--json"])
            #expect(again.sessions.count == 1, "\(name): \(again.stdout)")
            guard let back = again.sessions.first else { continue }
            for key in ["uid", "community_id", "verdict", "client", "server", "helo", "banner"] {
                #expect("\(back[key] ?? "nil")" == "\(s[key] ?? "nil")", "\(name): \(key)")
            }
            #expect(Self.findingCodes(back) == Self.findingCodes(s), "\(name)")
            if let tshark = E2E.which("tshark"), (s["tunnel"] as? [Any]) == nil {
                // tshark counts the connection's packets in the original the same.
                let client = s["client"] as! String, server = s["server"] as! String
                let cport = client.split(separator: ":").last!, sport = server.split(separator: ":").last!
                // (ICMP errors quoting the connection are not its packets.)
                var filter = "tcp.port == \(cport) && tcp.port == \(sport) && !icmp && !icmpv6"
                if let interface = s["interface"] as? String { filter += " && frame.interface_name == \"\(interface)\"" }
                let original = try E2E.runProgram(tshark, ["-r", capture, "-Y", filter, "-T", "fields", "-e", "frame.number"])
                let cut = try E2E.runProgram(tshark, ["-r", pcap.path, "-T", "fields", "-e", "frame.number"])
                let (inCut, inOriginal) = (cut.stdout.split(separator: "\n").count, original.stdout.split(separator: "\n").count)
                // Fragments: tshark's filter names only the frame that completes a datagram.
                if capture.contains("fragment") {
                    #expect(inCut >= inOriginal, "\(name)")
                } else {
                    #expect(inCut == inOriginal, "\(name)")
                }
            }
        }
    }

    @Test func evidenceNeverOverwritesAndRefusesLinks() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = E2E.captures.appendingPathComponent("default.pcap").path
        let evidence = dir.appendingPathComponent("ev")
        let first = try E2E.run(["-r", capture, "-q", "--evidence", evidence.path])
        #expect(first.status == 1)
        let files = try FileManager.default.contentsOfDirectory(atPath: evidence.path).sorted()
        let pcapName = try #require(files.first { $0.hasSuffix(".pcap") })
        let before = try Data(contentsOf: evidence.appendingPathComponent(pcapName))
        // A second run into the same directory leaves the files as they are and says so.
        let second = try E2E.run(["-r", capture, "-q", "--evidence", evidence.path])
        #expect(second.status == 1)
        #expect(second.stderr.contains("exists (not overwritten)"), "\(second.stderr)")
        #expect(try Data(contentsOf: evidence.appendingPathComponent(pcapName)) == before)
        // A planted link where an evidence file goes is refused; its target is untouched.
        let target = dir.appendingPathComponent("target")
        try Data("keep".utf8).write(to: target)
        let fresh = dir.appendingPathComponent("fresh")
        try FileManager.default.createDirectory(at: fresh, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: fresh.appendingPathComponent(pcapName), withDestinationURL: target)
        let planted = try E2E.run(["-r", capture, "-q", "--evidence", fresh.path])
        #expect(planted.stderr.contains("exists") || planted.stderr.contains("symbolic link"), "\(planted.stderr)")
        #expect(try String(contentsOf: target, encoding: .utf8) == "keep")
        // A link as the directory itself is refused: one line, status 2.
        let link = dir.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: evidence)
        let refused = try E2E.run(["-r", capture, "-q", "--evidence", link.path])
        #expect(refused.status == 2 && refused.stderr.contains("symbolic link"), "\(refused.stderr)")
    }

    @Test func outputsNeverDestroyWhatTheyShouldNot() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = dir.appendingPathComponent("in.pcap")
        try FileManager.default.copyItem(at: E2E.captures.appendingPathComponent("default.pcap"), to: capture)
        let original = try Data(contentsOf: capture)
        // The report over its own input is refused; the input is intact.
        let same = try E2E.run(["-r", capture.path, "--tls-report", capture.path])
        #expect(same.status == 2 && same.stderr.contains("is the input"), "\(same.stderr)")
        #expect(try Data(contentsOf: capture) == original)
        // A run that cannot read its input leaves an existing report as it was.
        let report = dir.appendingPathComponent("keep.json")
        try Data("previous report".utf8).write(to: report)
        let missing = try E2E.run(["-r", dir.appendingPathComponent("missing.pcap").path, "--tls-report", report.path])
        #expect(missing.status == 2)
        #expect(try String(contentsOf: report, encoding: .utf8) == "previous report")
        // A report that cannot be written fails the run.
        let full = try E2E.run(["-r", capture.path, "--tls-report", "/dev/full"])
        #expect(full.status == 2 && full.stderr.contains("cannot write the TLS report"), "\(full.status) \(full.stderr)")
        // `link/` names the link too.
        let target = dir.appendingPathComponent("target")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: true)
        let link = dir.appendingPathComponent("link")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: target)
        let slashed = try E2E.run(["-r", capture.path, "-q", "--evidence", link.path + "/"])
        #expect(slashed.status == 2 && slashed.stderr.contains("symbolic link"), "\(slashed.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: target.path).isEmpty)
    }

    /// Several captures: each session's evidence comes from its own capture and is named by
    /// it; EVE keeps the cross-session alerts (which name sessions by id, and ids start again
    /// per file) on the right flow, with or without -q.
    @Test func multiFileRunsKeepEvidenceAndAlertsApart() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = E2E.captures.appendingPathComponent("default.pcap").path
        let b = E2E.captures.appendingPathComponent("helo-only.pcap").path
        let copy = dir.appendingPathComponent("copy.pcap")
        try FileManager.default.copyItem(atPath: a, toPath: copy.path)
        let evidence = dir.appendingPathComponent("ev")
        let r = try E2E.run(["-r", a, "-r", copy.path, "--json", "--evidence", evidence.path])
        #expect(r.status == 1, "\(r.stderr)")
        let files = try FileManager.default.contentsOfDirectory(atPath: evidence.path).filter { $0.hasSuffix(".pcap") }.sorted()
        #expect(files.count == 2 && files.contains { $0.hasSuffix("-f1.pcap") } && files.contains { $0.hasSuffix("-f2.pcap") }, "\(files)")
        let single = try E2E.run(["-r", a, "--json", "--evidence", dir.appendingPathComponent("one").path])
        #expect(single.status == 1)
        let one = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("one").path).first { $0.hasSuffix(".pcap") }!
        let onePackets = try Data(contentsOf: dir.appendingPathComponent("one").appendingPathComponent(one)).count
        for f in files {
            #expect(try Data(contentsOf: evidence.appendingPathComponent(f)).count == onePackets, "\(f): cut from its own file only")
        }
        for extra in [[], ["-q"], ["-j", "1"], ["-j", "2"]] {
            let eve = try E2E.run(["-r", a, "-r", b, "--format", "eve"] + extra)
            let alerts = eve.json.filter { e in
                ((e["alert"] as? [String: Any])?["metadata"] as? [String: Any])?["smtpcap_code"] as? [String] == ["starttls-inconsistent"]
            }
            #expect(alerts.count == 1, "\(extra): \(alerts.count)")
            #expect(alerts.first?["dest_port"] as? Int == 25 && alerts.first?["src_port"] as? Int == 38332, "\(extra): \(alerts.first ?? [:])")
            let stats = eve.json.last
            #expect((stats?["timestamp"] as? String)?.hasPrefix("1970") == false, "\(extra)")
        }
    }

    // MARK: - Compressed captures

    @Test func gzipCapturesReadLikeTheirOriginals() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let gzip = try #require(E2E.which("gzip"))
        for name in ["default.pcap", "multi-interface.pcapng", "stripped-ipv4-intact-ipv6.pcapng"] {
            let original = E2E.captures.appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: original.path) else { continue }
            let copy = dir.appendingPathComponent(name)
            try FileManager.default.copyItem(at: original, to: copy)
            #expect(try E2E.runProgram(gzip, ["-9", copy.path]).status == 0)
            let gz = copy.path + ".gz"
            let plain = try E2E.run(["-r", original.path, "--json"]), packed = try E2E.run(["-r", gz, "--json"])
            #expect(packed.status == plain.status, "\(name): \(packed.stderr)")
            #expect(packed.stderr.isEmpty, "\(name): \(packed.stderr)")
            // The session lines, byte for byte (only the summary names the file).
            func sessionLines(_ r: E2E.Result) -> [Substring] { r.stdout.split(separator: "\n").filter { $0.hasPrefix("{\"type\":\"session\"") } }
            #expect(!sessionLines(plain).isEmpty)
            #expect(sessionLines(packed) == sessionLines(plain), "\(name)")
            #expect(packed.summary?["packets"] as? Int == plain.summary?["packets"] as? Int)
            if let tshark = E2E.which("tshark") {
                let frames = try E2E.runProgram(tshark, ["-r", gz, "-T", "fields", "-e", "frame.number"])
                #expect(frames.stdout.split(separator: "\n").count == packed.summary?["packets"] as? Int, "tshark reads \(name).gz too")
            }
        }
        // A cut gzip file: what came before the cut is analyzed, with a warning.
        let whole = try Data(contentsOf: URL(fileURLWithPath: dir.appendingPathComponent("default.pcap.gz").path))
        let cut = dir.appendingPathComponent("cut.pcap.gz")
        try whole.prefix(whole.count / 2).write(to: cut)
        let r = try E2E.run(["-r", cut.path, "--json"])
        #expect(r.status <= 1 && r.stderr.contains("warning"), "\(r.status) \(r.stderr)")
        #expect(r.summary?["capture"].flatMap { ($0 as? [String: Any])?["truncated_file"] as? Bool } == true)
        // Not a capture inside: one line, status 2.
        let text = dir.appendingPathComponent("notes.gz")
        let notes = dir.appendingPathComponent("notes")
        try Data("not a capture\n".utf8).write(to: notes)
        _ = try E2E.runProgram(gzip, [notes.path])
        let bad = try E2E.run(["-r", text.path])
        #expect(bad.status == 2 && bad.stderr.contains("not a pcap or pcapng capture file"), "\(bad.stderr)")
    }
}
