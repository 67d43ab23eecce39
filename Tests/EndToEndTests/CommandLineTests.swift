import Foundation
import SMTPCapTestSupport
import Testing

/// The command line's contract: exit codes, one-line errors, formats.
@Suite("Command line")
struct CommandLineTests {
    static let peer = E2E.peerCaptures
    static var havePeers: Bool { FileManager.default.fileExists(atPath: peer.path) }

    func oneLineError(_ r: E2E.Result, contains text: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(r.status == 2, "exit status", sourceLocation: sourceLocation)
        #expect(r.stdout.isEmpty, sourceLocation: sourceLocation)
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)", sourceLocation: sourceLocation)
        #expect(r.stderr.hasPrefix("smtpcap: "), sourceLocation: sourceLocation)
        #expect(r.stderr.contains(text), "\(r.stderr)", sourceLocation: sourceLocation)
    }

    @Test func helpExitsZero() throws {
        let r = try E2E.run(["--help"])
        #expect(r.status == 0)
        #expect(r.stdout.contains("EXIT STATUS"))
        #expect(r.stdout.contains("--json"))
    }

    @Test func badInputsAreOneLineErrorsWithStatus2() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = dir.appendingPathComponent("notes.txt")
        try Data("hello, this is not a capture\n".utf8).write(to: text)
        let empty = dir.appendingPathComponent("empty.pcap")
        try Data().write(to: empty)

        oneLineError(try E2E.run([]), contains: "nothing to read")
        oneLineError(try E2E.run(["-r", dir.appendingPathComponent("missing.pcap").path]), contains: "No such file")
        oneLineError(try E2E.run(["-r", dir.path]), contains: "directory")
        oneLineError(try E2E.run(["-r", text.path]), contains: "not a pcap or pcapng capture file")
        oneLineError(try E2E.run(["-r", empty.path]), contains: "not a pcap or pcapng capture file")
        oneLineError(try E2E.run(["-r", "/dev/null"]), contains: "not a pcap or pcapng capture file")
        oneLineError(try E2E.run(["-r", "-"], stdin: Data("garbage".utf8)), contains: "standard input")
        oneLineError(try E2E.run(["--ports", "25,x", "-r", text.path]), contains: "--ports")
        oneLineError(try E2E.run(["-i", "no-such-interface0", "-Z", "root"]), contains: "no-such-interface0")
        oneLineError(try E2E.run(["-r", "/dev/null", "--bogus-flag"]), contains: "bogus")
    }

    @Test(.enabled(if: havePeers)) func badFilterIsAnError() throws {
        let r = try E2E.run(["-r", Self.peer.appendingPathComponent("zeek-smtp.pcap").path, "tcp", "port", "and"])
        oneLineError(r, contains: "bad filter expression")
    }

    @Test(.enabled(if: havePeers)) func exitStatusFollowsFindings() throws {
        let encrypted = try E2E.run(["-r", Self.peer.appendingPathComponent("zeek-smtp-starttls.pcap").path])
        #expect(encrypted.status == 0, "\(encrypted.stdout)")
        #expect(encrypted.stdout.contains("ENCRYPTED after STARTTLS"))
        let plaintext = try E2E.run(["-r", Self.peer.appendingPathComponent("zeek-smtp.pcap").path])
        #expect(plaintext.status == 1)
        #expect(plaintext.stdout.contains("NOT ENCRYPTED"))
    }

    @Test(.enabled(if: havePeers)) func readsStandardInputAndSeveralFiles() throws {
        let file = Self.peer.appendingPathComponent("zeek-smtp.pcap")
        let viaStdin = try E2E.run(["-r", "-", "--json"], stdin: try Data(contentsOf: file))
        #expect(viaStdin.sessions.count == 2)
        let two = try E2E.run(["-r", file.path, "-r", Self.peer.appendingPathComponent("zeek-smtp-starttls.pcap").path, "--json"])
        #expect(two.sessions.count == 3)
        #expect(Set(two.sessions.compactMap { $0["file"] as? String }).count == 2)
        let summary = try #require(two.summary)
        #expect(summary["sessions"] as? Int == 3)
    }

    @Test(.enabled(if: havePeers)) func quietShowsOnlySessionsWithFindings() throws {
        let args = ["-r", Self.peer.appendingPathComponent("arkime-synthetic-multiprotocol.pcap").path, "--json"]
        let all = try E2E.run(args)
        let quiet = try E2E.run(args + ["-q"])
        let withFindings = all.sessions.filter { !(($0["findings"] as? [Any]) ?? []).isEmpty }
        #expect(quiet.sessions.count == withFindings.count)
        #expect(all.sessions.count > withFindings.count)
        #expect(quiet.summary != nil)
    }

    @Test(.enabled(if: havePeers)) func packetAndSessionLimits() throws {
        let file = Self.peer.appendingPathComponent("zeek-smtp.pcap").path
        let one = try E2E.run(["-r", file, "--json", "--sessions", "1"])
        #expect(one.sessions.count == 1)
        let few = try E2E.run(["-r", file, "--json", "-c", "5"])
        #expect(few.summary?["packets"] as? Int == 5)
    }

    /// Several files on several threads print exactly what one thread prints: reports in the
    /// order given, warnings in that order, the same summary and exit status.
    @Test func jobsDoNotChangeTheOutput() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: E2E.captures.path)
            .filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted()
        #expect(files.count >= 20)
        // A truncated copy (a warning mid-run) and a missing file among them.
        let source = try Data(contentsOf: E2E.captures.appendingPathComponent("default.pcap"))
        let cut = FileManager.default.temporaryDirectory.appendingPathComponent("cut-\(UUID().uuidString).pcap")
        try source.prefix(source.count - 37).write(to: cut)
        defer { try? FileManager.default.removeItem(at: cut) }
        // And a capture of a link type smtpcap does not read (802.11): a warning, not the end.
        let wifi = FileManager.default.temporaryDirectory.appendingPathComponent("wifi-\(UUID().uuidString).pcap")
        try Data([0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 105, 0, 0, 0]).write(to: wifi)
        defer { try? FileManager.default.removeItem(at: wifi) }
        var inputs = files.map { E2E.captures.appendingPathComponent($0).path }
        inputs.insert(cut.path, at: 3)
        inputs.insert("/nonexistent/missing.pcap", at: 7)
        inputs.insert(wifi.path, at: 12)
        let reads = inputs.flatMap { ["-r", $0] }
        for format in [[], ["--json"]] {
            let one = try E2E.run(reads + format + ["-j", "1"])
            let three = try E2E.run(reads + format + ["-j", "3"])
            #expect(one.status == 1)
            #expect(three.status == one.status)
            #expect(three.stdout == one.stdout)
            #expect(three.stderr == one.stderr)
            #expect(one.stderr.contains("missing.pcap"))
            #expect(one.stderr.contains("analyzed what came before the damage"))
            #expect(one.stderr.contains("is not supported"))
        }
        let json = try E2E.run(reads + ["--json", "-j", "2"])
        // Independent captures are taken in time order (by first packet), whatever the order given.
        let read = json.summary?["files"] as? [String] ?? []
        #expect(Set(read) == Set(inputs.filter { !$0.hasPrefix("/nonexistent") && $0 != wifi.path }))
        let frames = json.summary?["file_frames"] as? [[String: Any]] ?? []
        #expect(frames.compactMap { $0["file"] as? String } == read)
        // A file read as a continuation is named in a series with another (digits apart).
        let stem = { (path: String) in String((path as NSString).lastPathComponent.filter { !$0.isNumber }) }
        for f in frames where f["continues_previous"] as? Bool == true {
            let name = f["file"] as? String ?? ""
            #expect(read.filter { stem($0) == stem(name) }.count >= 2, "\(name)")
        }
        #expect(json.sessions.count == json.summary?["sessions"] as? Int)
    }

    @Test(.enabled(if: havePeers)) func truncatedFileIsAnalyzedUpToTheDamage() throws {
        let source = try Data(contentsOf: Self.peer.appendingPathComponent("zeek-smtp.pcap"))
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("truncated-\(UUID().uuidString).pcap")
        try source.prefix(source.count - 37).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let r = try E2E.run(["-r", path.path, "--json"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("warning"))
        #expect(r.sessions.count == 2)
        let capture = r.summary?["capture"] as? [String: Any]
        #expect(capture?["truncated_file"] as? Bool == true)
    }

    @Test(.enabled(if: havePeers)) func writeFileKeepsEvidence() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("evidence-\(UUID().uuidString).pcap")
        defer { try? FileManager.default.removeItem(at: out) }
        let first = try E2E.run(["-r", Self.peer.appendingPathComponent("zeek-smtp-starttls.pcap").path, "--json", "-w", out.path])
        let again = try E2E.run(["-r", out.path, "--json"])
        #expect(first.sessions.count == 1)
        #expect(first.sessions.first?["verdict"] as? String == "encrypted")
        #expect(first.sessions.count == again.sessions.count)
        #expect(first.sessions.first?["verdict"] as? String == again.sessions.first?["verdict"] as? String)
    }

    @Test(.enabled(if: havePeers)) func textAndJSONAgreeOnVerdicts() throws {
        for file in ["zeek-smtp.pcap", "zeek-smtp-starttls.pcap", "ndpi-smtp-starttls-ipv4-ipv6-vlan.pcap"] {
            let path = Self.peer.appendingPathComponent(file).path
            let json = try E2E.run(["-r", path, "--json"])
            let text = try E2E.run(["-r", path])
            #expect(json.status == text.status)
            #expect(!json.sessions.isEmpty, "\(file)")
            for session in json.sessions {
                #expect(text.stdout.contains(session["verdict_reason"] as? String ?? "<none>"))
            }
        }
    }
}
