import Foundation
import SMTPCapTestSupport
import Testing

/// Damaged and unusual inputs: a clear error, or a warning plus what could be read.
@Suite("Damaged inputs")
struct DamagedInputTests {
    static let pcapng = E2E.captures.appendingPathComponent("stripped-ipv4-intact-ipv6.pcapng")

    func tempPath(_ name: String) -> URL {
        FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-\(UUID().uuidString)-\(name)")
    }

    @Test func readsFromAFIFO() throws {
        let fifo = tempPath("fifo")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        defer { unlink(fifo.path) }
        let bytes = try Data(contentsOf: E2E.captures.appendingPathComponent("default.pcap"))
        // A writer on the other end, as `tcpdump -w fifo` would be.
        let writer = Thread {
            if let h = FileHandle(forWritingAtPath: fifo.path) {
                h.write(bytes)
                try? h.close()
            }
        }
        writer.start()
        let r = try E2E.run(["-r", fifo.path, "--json"])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.sessions.count == 2)
    }

    @Test func pcapngWithAnUnknownBlockIsRead() throws {
        // Insert a block of an unassigned type after the section header and interface
        // description blocks; a reader must skip it.
        var bytes = [UInt8](try Data(contentsOf: Self.pcapng))
        func u32(_ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]) << 16 | Int(bytes[at + 3]) << 24 }
        #expect(u32(0) == 0x0a0d0d0a && u32(8) == 0x1a2b3c4d, "little-endian pcapng expected")
        let shb = u32(4)
        let idb = u32(shb + 4)
        let at = shb + idb
        let body: [UInt8] = Array("unknown block, to be skipped".utf8) + [0, 0, 0, 0]
        let total = 12 + body.count
        func le(_ v: Int) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)] }
        bytes.insert(contentsOf: le(0x0000_0bad) + le(total) + body + le(total), at: at)
        let path = tempPath("unknown-block.pcapng")
        try Data(bytes).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let original = try E2E.run(["-r", Self.pcapng.path, "--json"])
        #expect(original.status == 0 || original.status == 1, "\(original.stderr)")
        #expect(original.sessions.count == 2)
        let r = try E2E.run(["-r", path.path, "--json"])
        #expect(!r.stderr.contains("warning"), "\(r.stderr)")
        #expect(r.status == original.status, "\(r.stderr)")
        #expect(r.sessions.count == original.sessions.count)
        #expect(r.sessions.map { $0["verdict"] as? String } == original.sessions.map { $0["verdict"] as? String })
    }

    @Test func everyTruncationOfACaptureIsHandled() throws {
        // Cut a real capture at many points: never a crash; status 2 only when nothing could
        // be analyzed (the file header itself is cut).
        let bytes = try Data(contentsOf: E2E.captures.appendingPathComponent("starttls-injection.pcap"))
        let path = tempPath("cut.pcap")
        defer { try? FileManager.default.removeItem(at: path) }
        for cut in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 40)) + [1, 23, 24, 25, 40] {
            try bytes.prefix(cut).write(to: path)
            let r = try E2E.run(["-r", path.path, "--json"])
            if cut < 24 {
                #expect(r.status == 2, "cut at \(cut)")
                #expect(r.stderr.split(separator: "\n").count == 1)
            } else {
                #expect(r.status == 0 || r.status == 1, "cut at \(cut): \(r.stderr)")
                #expect(r.summary != nil, "cut at \(cut)")
            }
            #expect(!r.stderr.contains("Fatal error") && !r.stderr.contains("crashed"), "cut at \(cut)")
        }
    }

    /// A capture file cut short while smtpcap reads it (rewritten in place, say): the mapped
    /// reader's pages past the new end are gone, and the run must end with one clear line and
    /// status 2, not a bus error. smtpcap is held mid-file by not reading its output until
    /// the file has been cut.
    @Test func aFileCutWhileBeingReadIsAnError() throws {
        let (p, out, err, path) = try startBlockedMidFile("cut-while-read.pcap")
        defer { try? FileManager.default.removeItem(at: path) }
        #expect(truncate(path.path, 1_000) == 0)
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit, "killed by signal \(p.terminationStatus)")
        #expect(p.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("\(path.path): the file became shorter while it was being read"), "\(stderr)")
        #expect(stderr.split(separator: "\n").count == 1, "\(stderr)")
        // It had got somewhere before the cut, and not to the end.
        let sessions = stdout.split(separator: UInt8(ascii: "\n")).count
        #expect(sessions > 0 && sessions < 3_000, "\(sessions) lines")
    }

    /// The guard takes only faults on a capture file's pages: a SIGBUS sent with kill goes to
    /// the disposition there was before (the Swift runtime's crash report, or AddressSanitizer's
    /// in a sanitized build), exactly as when the file is read without a mapping, and never to
    /// the guard's message.
    @Test func aSentBusSignalIsNotTakenForAShrunkFile() throws {
        func outcome(_ extra: [String]) throws -> String {
            let (p, out, err, path) = try startBlockedMidFile("sent-sigbus.pcap", extra)
            defer { try? FileManager.default.removeItem(at: path) }
            #expect(kill(p.processIdentifier, SIGBUS) == 0)
            let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(!stderr.contains("became shorter"), "\(stderr.prefix(300))")
            return "\(p.terminationReason == .exit ? "exit" : "signal") \(p.terminationStatus), crash report: "
                + "\(stderr.lowercased().contains("bus")), summary: \(stdout.contains("\"type\":\"summary\""))"
        }
        let mapped = try outcome([])
        #expect(mapped == (try outcome(["--no-mmap"])))
        #expect(mapped.contains("crash report: true") || mapped.hasPrefix("signal"), "\(mapped)")
    }

    /// smtpcap reading a capture of 3,000 short sessions, held a few dozen sessions into the
    /// file by a full output pipe nobody reads (so a test can act on the file meanwhile).
    func startBlockedMidFile(_ name: String, _ extra: [String] = []) throws -> (Process, Pipe, Pipe, URL) {
        var w = PcapWriter()
        let mx: (UInt32, Int) = (0xcb00_7119, 25)
        for i in 0..<3_000 {
            let client = (UInt32(0xc633_6400) + UInt32(i % 250), 1024 + i)
            var c: UInt32 = 1000, s: UInt32 = 9000
            func send(_ fromClient: Bool, _ text: String, flags: UInt8 = 0x18) {
                let payload = Array(text.utf8)
                if fromClient {
                    w.tcp(from: client, to: mx, seq: c, ack: s, flags: flags, payload)
                    c &+= UInt32(payload.count)
                } else {
                    w.tcp(from: mx, to: client, seq: s, ack: c, flags: flags, payload)
                    s &+= UInt32(payload.count)
                }
            }
            w.tcp(from: client, to: mx, seq: c &- 1, ack: 0, flags: 0x02)
            w.tcp(from: mx, to: client, seq: s &- 1, ack: c, flags: 0x12)
            send(false, "220 mx.example.org ESMTP\r\n")
            send(true, "EHLO c\r\n")
            send(false, "250-mx.example.org\r\n250 PIPELINING\r\n")
            send(true, "QUIT\r\n")
            send(false, "221 bye\r\n")
            send(false, "", flags: 0x11)
            send(true, "", flags: 0x11)
        }
        let path = tempPath(name)
        try Data(w.bytes).write(to: path)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: E2E.binary)
        p.arguments = ["-r", path.path, "--json", "-v"] + extra
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        // Blocked writing to the full pipe: sleeping, and still running.
        func state() -> Character? {
            guard let stat = try? String(contentsOfFile: "/proc/\(p.processIdentifier)/stat", encoding: .utf8),
                  let close = stat.lastIndex(of: ")") else { return nil }
            return stat[stat.index(close, offsetBy: 2)...].first
        }
        let blocked = E2E.waitUntil(seconds: 60) { state() == "S" || !p.isRunning }
        #expect(blocked && p.isRunning, "smtpcap did not block on its output")
        return (p, out, err, path)
    }

    @Test func garbageOnPort25IsNotMistakenForMail() throws {
        // A capture whose port-25 payload is random bytes: the corpus's frames with their
        // payload bytes scrambled in place (headers intact).
        var bytes = [UInt8](try Data(contentsOf: E2E.captures.appendingPathComponent("no-starttls-plaintext.pcap")))
        var state: UInt64 = 0x5eed
        var at = 24
        while at + 16 <= bytes.count {
            let caplen = Int(bytes[at + 8]) | Int(bytes[at + 9]) << 8 | Int(bytes[at + 10]) << 16 | Int(bytes[at + 11]) << 24
            let frame = at + 16
            // Ethernet (14) + IPv4 (20) + TCP header (data offset) — scramble what follows.
            if caplen > 54, frame + caplen <= bytes.count {
                let tcpHeader = Int(bytes[frame + 34 + 12] >> 4) * 4
                for i in (frame + 34 + tcpHeader)..<(frame + caplen) {
                    state = state &* 6_364_136_223_846_793_005 &+ 1
                    bytes[i] = UInt8(truncatingIfNeeded: state >> 33)
                }
            }
            at = frame + caplen
        }
        let path = tempPath("garbage.pcap")
        try Data(bytes).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }
        let r = try E2E.run(["-r", path.path, "--json", "-v"])
        #expect(r.status == 0 || r.status == 1)
        let session = try #require(r.sessions.first)
        #expect((session["messages"] as? [Any])?.isEmpty == true)
        let codes = (session["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        #expect(!codes.contains("plaintext-data") && !codes.contains("starttls-missing"))
        #expect(session["verdict"] as? String == "inconclusive")
        // Output stays pure ASCII whatever the bytes were.
        #expect(r.stdout.utf8.allSatisfy { $0 < 0x80 })
    }
    /// A minimal classic pcap writer (Ethernet, IPv4, TCP) for crafted hostile traffic.
    struct PcapWriter {
        var bytes: [UInt8] = [0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0]
        var clock: UInt32 = 0

        static func le32(_ v: UInt32) -> [UInt8] { [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)] }
        static func be16(_ v: Int) -> [UInt8] { [UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }
        static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

        mutating func tcp(from: (UInt32, Int), to: (UInt32, Int), seq: UInt32, ack: UInt32, flags: UInt8, _ payload: [UInt8] = []) {
            clock += 1
            var frame: [UInt8] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00]
            frame += [0x45, 0] + Self.be16(40 + payload.count) + [0, 0, 0x40, 0, 64, 6, 0, 0]
            frame += Self.be32(from.0) + Self.be32(to.0)
            frame += Self.be16(from.1) + Self.be16(to.1) + Self.be32(seq) + Self.be32(ack) + [0x50, flags, 0xff, 0xff, 0, 0, 0, 0]
            frame += payload
            bytes += Self.le32(1_767_225_600 + clock / 1000) + Self.le32((clock % 1000) * 1000)
            bytes += Self.le32(UInt32(frame.count)) + Self.le32(UInt32(frame.count)) + frame
        }
    }

    /// 400 connections at once, each sending DATA and 60,000 bytes before the server's 354 (so
    /// the SMTP machine holds them): 24 MB of buffers against the 3 MiB a 48 MiB budget allows.
    /// The budget must evict and report them, and count it, through the real command line.
    @Test func buffersPastTheMemoryBudgetAreEvictedAndReported() throws {
        var w = PcapWriter()
        let mx: (UInt32, Int) = (0xcb00_7119, 25)
        let clients = (0..<400).map { (UInt32(0xc633_6400) + UInt32($0 % 250), 1024 + $0) }
        var cseq = [UInt32](repeating: 1000, count: clients.count), sseq = [UInt32](repeating: 9000, count: clients.count)
        func client(_ i: Int, _ payload: [UInt8]) {
            w.tcp(from: clients[i], to: mx, seq: cseq[i], ack: sseq[i], flags: 0x18, payload)
            cseq[i] &+= UInt32(payload.count)
        }
        func server(_ i: Int, _ text: String) {
            let payload = Array(text.utf8)
            w.tcp(from: mx, to: clients[i], seq: sseq[i], ack: cseq[i], flags: 0x18, payload)
            sseq[i] &+= UInt32(payload.count)
        }
        for i in clients.indices {
            w.tcp(from: clients[i], to: mx, seq: cseq[i] &- 1, ack: 0, flags: 0x02)
            w.tcp(from: mx, to: clients[i], seq: sseq[i] &- 1, ack: cseq[i], flags: 0x12)
            server(i, "220 mx.example.org ESMTP\r\n")
            client(i, Array("EHLO c\r\n".utf8))
            server(i, "250-mx.example.org\r\n250 PIPELINING\r\n")
            client(i, Array("MAIL FROM:<a@example.net>\r\n".utf8))
            server(i, "250 ok\r\n")
            client(i, Array("RCPT TO:<b@example.org>\r\n".utf8))
            server(i, "250 ok\r\n")
            client(i, Array("DATA\r\n".utf8))
        }
        // Content before any 354, interleaved across the connections, 1,200 bytes a segment.
        let chunk = [UInt8](repeating: 0x61, count: 1_198) + [0x0d, 0x0a]
        for _ in 0..<50 {
            for i in clients.indices { client(i, chunk) }
        }
        let path = tempPath("held-buffers.pcap")
        try Data(w.bytes).write(to: path)
        defer { try? FileManager.default.removeItem(at: path) }

        let r = try E2E.run(["-r", path.path, "--json", "--max-memory", "48"])
        #expect(r.status == 0 || r.status == 1, "\(r.stderr)")
        let capture = try #require(r.summary?["capture"] as? [String: Any])
        let evicted = try #require(capture["evicted_memory"] as? Int)
        #expect(evicted > 300)
        #expect(capture["connections"] as? Int == 400)
        #expect((capture["stray_packets"] as? Int ?? 0) > 0)
        // Every connection is reported once; the evicted ones say so.
        #expect(r.sessions.count == 400)
        #expect(r.sessions.filter { $0["close"] as? String == "evicted" }.count == evicted)
        // With room for them (buffers grow by doubling: about 26 MB here) nothing is evicted.
        let roomy = try E2E.run(["-r", path.path, "--json", "--max-memory", "512"])
        let roomyCapture = try #require(roomy.summary?["capture"] as? [String: Any])
        #expect(roomyCapture["evicted_memory"] as? Int == 0)
        #expect(roomy.sessions.count == 400)
    }
}
