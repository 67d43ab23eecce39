import Foundation
import SMTPCapTestSupport
import Testing

/// Captures as users have them (captures/make-wire-captures.sh): rotated files, a pause
/// inside DATA, traffic that is not SMTP.
@Suite("Captures as users have them")
struct WireCaptureTests {
    static let rotated = ["rot", "rot1", "rot2"].map { E2E.captures.appendingPathComponent("rotated/\($0)").path }

    /// Session lines without what names the files read.
    static func sessionLines(_ stdout: String) -> [String] {
        stdout.split(separator: "\n").map(String.init).filter { $0.contains("\"type\":\"session\"") }
    }

    @Test(.enabled(if: E2E.which("mergecap") != nil, "mergecap is not installed"))
    func rotatedFilesReadAsTheirMerge() throws {
        let merged = FileManager.default.temporaryDirectory.appendingPathComponent("merged-\(UUID().uuidString).pcap")
        defer { try? FileManager.default.removeItem(at: merged) }
        let m = try E2E.runProgram(E2E.which("mergecap")!, ["-F", "pcap", "-a", "-w", merged.path] + Self.rotated)
        #expect(m.status == 0, "\(m.stderr)")
        let whole = try E2E.run(["-r", merged.path, "--json"])
        // Every command-line order, as a glob or a hand would give them: the same as the merge.
        for order in [Self.rotated, Self.rotated.reversed(), [Self.rotated[1], Self.rotated[2], Self.rotated[0]]] {
            for jobs in ["1", "2"] {
                let parts = try E2E.run(order.flatMap { ["-r", $0] } + ["--json", "-j", jobs])
                #expect(parts.status == whole.status)
                #expect(Self.sessionLines(parts.stdout) == Self.sessionLines(whole.stdout), "order \(order.map { ($0 as NSString).lastPathComponent })")
                #expect(parts.sessions.count == 1)
                let frames = parts.summary?["file_frames"] as? [[String: Any]] ?? []
                #expect(frames.compactMap { ($0["file"] as? String).map { ($0 as NSString).lastPathComponent } } == ["rot", "rot1", "rot2"])
                #expect(frames.compactMap { $0["continues_previous"] as? Bool } == [false, true, true])
                // The frame ranges tile the merge's numbering.
                let firsts = frames.compactMap { $0["first_frame"] as? Int }, lasts = frames.compactMap { $0["last_frame"] as? Int }
                #expect(firsts.first == 1 && lasts.last == whole.summary?["packets"] as? Int)
                #expect(zip(lasts.dropLast(), firsts.dropFirst()).allSatisfy { $0 + 1 == $1 })
            }
        }
        let session = try #require(whole.sessions.first)
        let messages = session["messages"] as? [[String: Any]] ?? []
        #expect(messages.count == 1 && (messages.first?["bytes"] as? Int ?? 0) > 2_500_000)
        #expect(session["gaps"] as? Int == 0)
        // In text, the summary says where each file's frames fall.
        let text = try E2E.run(Self.rotated.flatMap { ["-r", $0] })
        #expect(text.stdout.contains("continues the file before"))
    }

    @Test func aFileAloneIsNotARotation() throws {
        // Two unrelated captures made one after the other: two captures, each numbered from 1.
        let a = E2E.captures.appendingPathComponent("no-starttls-plaintext.pcap").path
        let b = E2E.captures.appendingPathComponent("postfix-starttls-tls13.pcap").path
        let r = try E2E.run(["-r", b, "-r", a, "--json"])
        let frames = r.summary?["file_frames"] as? [[String: Any]] ?? []
        #expect(frames.compactMap { $0["continues_previous"] as? Bool } == [false, false])
        #expect(frames.compactMap { $0["first_frame"] as? Int } == [1, 1])
        #expect(Set(r.sessions.compactMap { $0["file"] as? String }) == [a, b])
        // One file given twice: two captures of the same packets, never a continuation.
        let twice = try E2E.run(["-r", a, "-r", a, "--json"])
        #expect((twice.summary?["file_frames"] as? [[String: Any]] ?? []).compactMap { $0["continues_previous"] as? Bool } == [false, false])
        #expect(twice.sessions.count == 2)
        // A rotated file alone, and two rotated files that do not follow each other (rot2
        // before rot1 is impossible in time; rot and rot2 leave a hole): still one capture
        // for those that do follow, in time order.
        let pair = try E2E.run(["-r", Self.rotated[2], "-r", Self.rotated[0], "--json"])
        #expect((pair.summary?["file_frames"] as? [[String: Any]] ?? []).compactMap { $0["continues_previous"] as? Bool } == [false, true])
        #expect(pair.sessions.count == 1)
        #expect((pair.sessions.first?["gaps"] as? Int ?? 0) > 0, "rot1's bytes are missing")
    }

    /// Copies of the rotated set under other names, shifted in time (editcap -t).
    static func shiftedCopies(_ names: [String], by seconds: String, in dir: URL) throws -> [String] {
        try zip(Self.rotated, names).map { source, name in
            let path = dir.appendingPathComponent(name).path
            let r = try E2E.runProgram(E2E.which("editcap")!, ["-t", seconds, source, path])
            #expect(r.status == 0, "\(r.stderr)")
            return path
        }
    }

    @Test(.enabled(if: E2E.which("editcap") != nil, "editcap is not installed"))
    func twoTapsRotatedSideBySideStayTwoCaptures() throws {
        // in, out, in1, out1, ... in time order: each rotation set whole, one session each.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("taps-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let inside = try Self.shiftedCopies(["in", "in1", "in2"], by: "0", in: dir)
        let outside = try Self.shiftedCopies(["out", "out1", "out2"], by: "0.001", in: dir)
        let r = try E2E.run((outside + inside).flatMap { ["-r", $0] } + ["--json"])
        #expect(r.sessions.count == 2)
        for s in r.sessions {
            #expect(((s["messages"] as? [[String: Any]])?.first?["bytes"] as? Int ?? 0) > 2_500_000, "\(s["file"] ?? "")")
            #expect(s["gaps"] as? Int == 0)
        }
        let frames = r.summary?["file_frames"] as? [[String: Any]] ?? []
        #expect(frames.compactMap { ($0["file"] as? String).map { ($0 as NSString).lastPathComponent } } == ["in", "in1", "in2", "out", "out1", "out2"])
        #expect(frames.compactMap { $0["continues_previous"] as? Bool } == [false, true, true, false, true, true])
        // The same names a day apart: nothing continues across the silence.
        let later = try Self.shiftedCopies(["in3", "in4", "in5"], by: "86400", in: dir)
        let apart = try E2E.run([inside[0], later[1]].flatMap { ["-r", $0] } + ["--json"])
        #expect((apart.summary?["file_frames"] as? [[String: Any]] ?? []).compactMap { $0["continues_previous"] as? Bool } == [false, false])
    }

    @Test func aPauseInsideDataStaysOneSession() throws {
        let path = E2E.captures.appendingPathComponent("long-pause-data.pcap").path
        // The default timeout covers RFC 5321's 10 minutes.
        var r = try E2E.run(["-r", path, "--json"])
        #expect(r.sessions.count == 1)
        #expect(r.sessions.first?["resumed_after_idle"] == nil)
        #expect((r.sessions.first?["messages"] as? [[String: Any]])?.first?["reply"] as? Int == 250)
        // Shorter than the pause: dormant, then resumed, still one session, marked.
        r = try E2E.run(["-r", path, "--json", "--idle-timeout", "300"])
        #expect(r.sessions.count == 1)
        let pause = r.sessions.first?["resumed_after_idle"] as? Int ?? 0
        #expect((399...401).contains(pause), "resumed after \(pause) s")
        #expect((r.summary?["capture"] as? [String: Any])?["resumed"] as? Int == 1)
        let text = try E2E.run(["-r", path, "--idle-timeout", "300"])
        #expect(text.stdout.contains("resumed after \(pause) s idle"))
        // Less than half the pause: the connection ended, its rest is another session.
        r = try E2E.run(["-r", path, "--json", "--idle-timeout", "150"])
        #expect(r.sessions.count == 2)
        #expect(r.sessions.first?["close"] as? String == "idle")
    }

    /// vxlan-underlay.pcap with its VXLAN port moved to 4790 (VXLAN-GPE, which smtpcap does
    /// not decode): packets, but no session. Rewritten record by record (Ethernet, IPv4, UDP).
    static func movedVXLANPort() throws -> URL {
        var bytes = [UInt8](try Data(contentsOf: E2E.captures.appendingPathComponent("vxlan-underlay.pcap")))
        var at = 24
        while at + 16 <= bytes.count {
            let caplen = Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
            let frame = at + 16
            let ihl = Int(bytes[frame + 14] & 0x0f) * 4
            let udp = frame + 14 + ihl
            if bytes[frame + 12] == 0x08, bytes[frame + 13] == 0, bytes[frame + 23] == 17, bytes[udp + 2] == 0x12, bytes[udp + 3] == 0xb5 {
                bytes[udp + 3] = 0xb6  // 4789 -> 4790
                bytes[udp + 6] = 0     // no UDP checksum
                bytes[udp + 7] = 0
            }
            at = frame + caplen
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("gpe-\(UUID().uuidString).pcap")
        try Data(bytes).write(to: url)
        return url
    }

    @Test func noSessionSaysWhatWasSeen() throws {
        let url = try Self.movedVXLANPort()
        defer { try? FileManager.default.removeItem(at: url) }
        let json = try E2E.run(["-r", url.path, "--json"])
        #expect(json.status == 0)
        #expect(json.sessions.isEmpty)
        let packets = json.summary?["packets"] as? Int ?? 0
        let said = json.summary?["not_smtp"] as? String ?? ""
        #expect(said.hasPrefix("\(packets) packet(s), none reached an SMTP session: "), "\(said)")
        #expect(said.contains("UDP to port 4790 (VXLAN-GPE, not decoded)"), "\(said)")
        let other = json.summary?["other_traffic"] as? [[String: Any]] ?? []
        #expect(other.first?["what"] as? String == "udp" && other.first?["value"] as? Int == 4790)
        #expect(other.reduce(0) { $0 + ($1["packets"] as? Int ?? 0) } == packets)
        let text = try E2E.run(["-r", url.path])
        #expect(text.stdout.contains("not SMTP  \(said)"))
        // The capture as made: sessions, and nothing to explain.
        let plain = try E2E.run(["-r", E2E.captures.appendingPathComponent("vxlan-underlay.pcap").path, "--json"])
        #expect(plain.sessions.count == 2)
        #expect(plain.summary?["not_smtp"] is NSNull)
    }

    @Test func smtpOnAnotherPortIsPointedOut() throws {
        let path = E2E.captures.appendingPathComponent("no-starttls-plaintext.pcap").path
        let r = try E2E.run(["-r", path, "--json", "--ports", "2525"])
        #expect(r.sessions.isEmpty)
        #expect((r.summary?["not_smtp"] as? String ?? "").contains("TCP to port 25 (SMTP there? add --ports 25)"))
    }

    @Test func interfacesAreNamed() throws {
        let r = try E2E.run(["-r", E2E.captures.appendingPathComponent("multi-interface.pcapng").path, "--json", "--no-mmap"])
        #expect(r.status == 1)
        #expect(r.sessions.compactMap { $0["interface"] as? String }.sorted() == ["any", "c0"])
        let text = try E2E.run(["-r", E2E.captures.appendingPathComponent("multi-interface.pcapng").path])
        #expect(text.stdout.contains("capture   frame 1 on c0"))
    }

    /// `smtpcap -i` on a VXLAN underlay finds the session inside with its default filter
    /// (Tests/Scripts/live-vxlan.sh: real namespaces, a real vxlan device, aiosmtpd, smtplib).
    @Test(.enabled(if: getuid() == 0 && E2E.which("ip") != nil && E2E.which("python3") != nil, "needs root, iproute2 and python3"),
          .timeLimit(.minutes(2)))
    func liveCaptureFindsSMTPInsideVXLAN() throws {
        let script = E2E.repoRoot.appendingPathComponent("Tests/Scripts/live-vxlan.sh").path
        let r = try E2E.runProgram("/bin/bash", [script, E2E.binary], timeout: 90)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let sessions = lines.filter { $0["type"] as? String == "session" }
        #expect(sessions.count == 1, "\(r.stdout)")
        let tunnel = sessions.first?["tunnel"] as? [[String: Any]]
        #expect(tunnel?.first?["type"] as? String == "vxlan")
        #expect(tunnel?.first?["vni"] as? Int == 42)
        #expect(sessions.first?["server"] as? String == "198.51.100.25:25")
        #expect(sessions.first?["verdict"] as? String == "plaintext")
    }
}
