import SMTPCapCore
import PacketDecoding
import Testing

/// The TTL and SYN options the decoder hands to the path evidence.
@Suite("Path facts from headers")
struct PathFactsTests {
    /// TCP options as bytes: MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (the
    /// order Linux sends in a SYN-ACK).
    static let linuxSynAck: [UInt8] = [2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7]

    static func syn(options: [UInt8], flags: UInt8 = 0x12, payload: [UInt8] = []) -> [UInt8] {
        var tcp = Frames.tcp(src: 25, dst: 40_000, flags: flags, payload: [])
        precondition(options.count % 4 == 0)
        tcp[12] = UInt8((20 + options.count) / 4) << 4
        return Array(tcp[0..<20]) + options + payload
    }

    func segment(_ frame: [UInt8], link: LinkType = .ethernet) -> TCPSegment? {
        let decoder = PacketDecoder(linkType: link)
        guard case .tcp(let s) = decoder.decode(frame.span) else { return nil }
        return s
    }

    @Test func ipv4TTLAndSynAckOptions() throws {
        var ip = Frames.ipv4(Self.syn(options: Self.linuxSynAck))
        ip[8] = 57
        let frame = Frames.ethernet(ip)
        let s = try #require(segment(frame))
        #expect(s.ttl == 57)
        let options = s.synOptions(in: frame.span)
        #expect(options.description == "mss=1460,sack,ts,nop,wscale=7")
        #expect(options.mss == 1460 && options.windowScale == 7 && !options.truncated)
    }

    @Test func ipv6HopLimit() throws {
        var ip = Frames.ipv6(Self.syn(options: Self.linuxSynAck))
        ip[7] = 61
        let frame = Frames.ethernet(ip, type: 0x86dd)
        let s = try #require(segment(frame))
        #expect(s.ttl == 61)
        #expect(s.synOptions(in: frame.span).description == "mss=1460,sack,ts,nop,wscale=7")
    }

    @Test func theOptionsAreLocatedInTheFrame() throws {
        let frame = Frames.ethernet(Frames.ipv4(Frames.tcp(options: 12, flags: 0x02)))
        let s = try #require(segment(frame))
        #expect(s.options == 12 && s.payloadOffset == 14 + 20 + 20 + 12)
        // Other packets do not locate them.
        let data = try #require(segment(Frames.ethernet(Frames.ipv4(Frames.tcp(options: 12)))))
        #expect(data.options == 0)
        #expect(s.synOptions(in: frame.span).description == Array(repeating: "nop", count: TCPOptionsPrint.capacity).joined(separator: ",") + ",...")
        #expect(s.ttl == 64)
    }

    @Test func innermostHeaderGivesTheTTL() throws {
        // IPv4 inside IPv4 (protocol 4): the outer header's TTL is the tunnel's, not the path's.
        var inner = Frames.ipv4(Self.syn(options: Self.linuxSynAck))
        inner[8] = 50
        var outer = Frames.ipv4(inner, proto: 4)
        outer[8] = 250
        let s = try #require(segment(Frames.ethernet(outer)))
        #expect(s.ttl == 50)
    }

    @Test(arguments: [
        // Windows-style: MSS, NOP, WS, NOP, NOP, SACK permitted.
        ([2, 4, 0x05, 0xb4, 1, 3, 3, 8, 1, 1, 4, 2] as [UInt8], "mss=1460,nop,wscale=8,nop,nop,sack"),
        // End of options stops the list; what follows is padding.
        ([2, 4, 0x05, 0x78, 0, 9, 9, 9] as [UInt8], "mss=1400"),
        // An unknown kind with a length, then a kind whose length runs past the header.
        ([30, 4, 0, 0, 2, 9, 0, 0] as [UInt8], "opt30,..."),
        // A length below two is malformed.
        ([2, 1, 0, 0] as [UInt8], "..."),
        // A lone kind at the end with no length byte.
        ([1, 1, 1, 8] as [UInt8], "nop,nop,nop,..."),
    ])
    func optionsPrint(_ bytes: [UInt8], _ expected: String) {
        #expect(TCPOptionsPrint(bytes.span).description == expected)
    }

    @Test func moreOptionsThanTheCapacityAreMarkedCut() {
        let nops = [UInt8](repeating: 1, count: 40)
        let print = TCPOptionsPrint(nops.span)
        #expect(Int(print.count) == TCPOptionsPrint.capacity)
        #expect(print.truncated)
        #expect(print.description.hasSuffix(",..."))
    }

    @Test func optionsCutByTheSnapLengthAreMarkedCut() throws {
        let frame = Frames.ethernet(Frames.ipv4(Self.syn(options: Self.linuxSynAck)))
        // Cut inside the options: the header claims 40 bytes, the frame holds 30 of them.
        let cut = Array(frame.prefix(14 + 20 + 30))
        let s = try #require(segment(cut))
        #expect(s.synOptions(in: cut.span).truncated)
        #expect(s.synOptions(in: cut.span).description.hasPrefix("mss=1460,sack,"))
        // Cut before the options even start.
        let none = Array(frame.prefix(14 + 20 + 20))
        let t = try #require(segment(none))
        #expect(t.synOptions(in: none.span).description == "...")
    }

    @Test func initialTTLGuess() {
        #expect(PathObservation.initialTTL(for: 1) == 32)
        #expect(PathObservation.initialTTL(for: 32) == 32)
        #expect(PathObservation.initialTTL(for: 33) == 64)
        #expect(PathObservation.initialTTL(for: 64) == 64)
        #expect(PathObservation.initialTTL(for: 113) == 128)
        #expect(PathObservation.initialTTL(for: 128) == 128)
        #expect(PathObservation.initialTTL(for: 129) == 255)
        #expect(PathObservation.initialTTL(for: 255) == 255)
    }

    @Test func observationComparesOnlyAfterTheHandshake() {
        var p = PathObservation()
        p.observe(ttl: 50, syn: true, data: false, frame: 2)     // SYN-ACK from a SYN proxy
        p.observe(ttl: 51, syn: false, data: true, frame: 4)     // the server's data
        p.observe(ttl: 51, syn: false, data: false, frame: 5)
        #expect(p.ttlChanges == 0)
        #expect(p.ttl == 50 && p.synTTL == 50 && p.dataTTL == 51 && p.firstTTL == 51)
        p.observe(ttl: 52, syn: false, data: false, frame: 6)
        p.observe(ttl: 240, syn: false, data: false, frame: 7)   // another box
        p.observe(ttl: 52, syn: false, data: false, frame: 8)
        #expect(p.ttlChanges == 3)
        #expect(p.changedTTL == 240 && p.changedFrame == 7 && p.largestDeviation == 189)
    }
}
