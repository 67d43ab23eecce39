import SMTPCapTestSupport
import SMTPCapCore
import PacketDecoding
import Testing

/// Frame builders: headers as RFC 791, 8200, 9293 and the link-type registry lay them out.
enum Frames {
    static let payload = Array("EHLO client.example.net\r\n".utf8)

    static func tcp(src: UInt16 = 40_000, dst: UInt16 = 25, seq: UInt32 = 0x0102_0304, options: Int = 0,
                    flags: UInt8 = 0x18, payload: [UInt8] = payload) -> [UInt8] {
        let offset = UInt8((20 + options) / 4) << 4
        var h: [UInt8] = [UInt8(src >> 8), UInt8(src & 0xff), UInt8(dst >> 8), UInt8(dst & 0xff)]
        h += [UInt8(seq >> 24), UInt8((seq >> 16) & 0xff), UInt8((seq >> 8) & 0xff), UInt8(seq & 0xff)]
        h += [0, 0, 0, 9, offset, flags, 0xff, 0xff, 0, 0, 0, 0]
        h += [UInt8](repeating: 1, count: options)  // NOPs
        return h + payload
    }

    static func ipv4(_ l4: [UInt8], options: Int = 0, fragment: UInt16 = 0x4000, proto: UInt8 = 6, totalLength: Int? = nil) -> [UInt8] {
        let hl = 20 + options
        let total = totalLength ?? (hl + l4.count)
        var h: [UInt8] = [0x40 | UInt8(hl / 4), 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 1,
                          UInt8(fragment >> 8), UInt8(fragment & 0xff), 64, proto, 0, 0,
                          198, 51, 100, 10, 203, 0, 113, 25]
        h += [UInt8](repeating: 1, count: options)
        return h + l4
    }

    static func ipv6(_ l4: [UInt8], extensions: [(UInt8, [UInt8])] = []) -> [UInt8] {
        // extensions: (type of this header, body after next/len) — chained to TCP at the end.
        var chain: [UInt8] = []
        var firstNext: UInt8 = 6
        for (i, ext) in extensions.enumerated().reversed() {
            let next: UInt8 = i == extensions.count - 1 ? 6 : extensions[i + 1].0
            var body = [next, UInt8((ext.1.count + 2) / 8 - 1)] + ext.1
            if ext.0 == 44 { body = [next, 0] + ext.1 }  // fragment header: fixed 8 bytes
            chain = body + chain
            firstNext = ext.0
        }
        if extensions.isEmpty { firstNext = 6 }
        let len = chain.count + l4.count
        var h: [UInt8] = [0x60, 0, 0, 0, UInt8(len >> 8), UInt8(len & 0xff), firstNext, 64]
        h += [0x20, 0x01, 0x0d, 0xb8, 0, 1] + [UInt8](repeating: 0, count: 9) + [0x10]
        h += [0x20, 0x01, 0x0d, 0xb8, 0, 2] + [UInt8](repeating: 0, count: 9) + [0x25]
        return h + chain + l4
    }

    static func ethernet(_ l3: [UInt8], type: UInt16 = 0x0800, tags: [UInt16] = []) -> [UInt8] {
        var f: [UInt8] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2]
        for tpid in tags { f += [UInt8(tpid >> 8), UInt8(tpid & 0xff), 0x00, 0x7d] }
        return f + [UInt8(type >> 8), UInt8(type & 0xff)] + l3
    }
}

struct LinkCase: CustomStringConvertible, Sendable {
    var name: String
    var dlt: Int32
    var frame: [UInt8]
    var version: Int
    var description: String { name }
}

let v4 = Frames.ipv4(Frames.tcp())
let v6 = Frames.ipv6(Frames.tcp())
let linkCases: [LinkCase] = [
    LinkCase(name: "Ethernet IPv4", dlt: 1, frame: Frames.ethernet(v4), version: 4),
    LinkCase(name: "Ethernet IPv6", dlt: 1, frame: Frames.ethernet(v6, type: 0x86dd), version: 6),
    LinkCase(name: "Ethernet 802.1Q", dlt: 1, frame: Frames.ethernet(v4, tags: [0x8100]), version: 4),
    LinkCase(name: "Ethernet QinQ", dlt: 1, frame: Frames.ethernet(v6, type: 0x86dd, tags: [0x88a8, 0x8100]), version: 6),
    LinkCase(name: "Ethernet with trailer padding", dlt: 1, frame: Frames.ethernet(v4) + [0, 0, 0, 0], version: 4),
    LinkCase(name: "Linux cooked v1", dlt: 113, frame: [0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00] + v4, version: 4),
    LinkCase(name: "Linux cooked v2", dlt: 276, frame: [0x86, 0xdd, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0] + v6, version: 6),
    LinkCase(name: "BSD NULL, little-endian AF_INET", dlt: 0, frame: [2, 0, 0, 0] + v4, version: 4),
    LinkCase(name: "BSD NULL, big-endian AF_INET6 (BSD 24)", dlt: 0, frame: [0, 0, 0, 24] + v6, version: 6),
    LinkCase(name: "BSD NULL, little-endian AF_INET6 (Darwin 30)", dlt: 0, frame: [30, 0, 0, 0] + v6, version: 6),
    LinkCase(name: "OpenBSD LOOP", dlt: 108, frame: [0, 0, 0, 2] + v4, version: 4),
    LinkCase(name: "raw IP (DLT_RAW) IPv4", dlt: 12, frame: v4, version: 4),
    LinkCase(name: "raw IP (LINKTYPE_RAW) IPv6", dlt: 101, frame: v6, version: 6),
    LinkCase(name: "DLT_IPV4", dlt: 228, frame: v4, version: 4),
    LinkCase(name: "DLT_IPV6", dlt: 229, frame: v6, version: 6),
    LinkCase(name: "IPv4 with options, TCP with options", dlt: 12, frame: Frames.ipv4(Frames.tcp(options: 12), options: 8), version: 4),
    LinkCase(name: "IPv6 hop-by-hop + destination options", dlt: 12,
             frame: Frames.ipv6(Frames.tcp(), extensions: [(0, [1, 4, 0, 0, 0, 0]), (60, [1, 4, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0])]), version: 6),
    LinkCase(name: "IPv6 atomic fragment header", dlt: 12, frame: Frames.ipv6(Frames.tcp(), extensions: [(44, [0, 0, 0, 0, 0, 1])]), version: 6),
]

@Suite("Decoding")
struct DecoderTests {
    @Test(arguments: linkCases)
    func decodesEveryLinkType(_ c: LinkCase) throws {
        let decoder = PacketDecoder(linkType: try #require(LinkType(dlt: c.dlt)))
        let outcome = decoder.decode(c.frame.span)
        guard case .tcp(let s) = outcome else {
            Issue.record("\(c.name): \(outcome)")
            return
        }
        #expect(s.source.port == 40_000)
        #expect(s.destination.port == 25)
        #expect(s.sequence == 0x0102_0304)
        #expect(s.flags == [.psh, .ack])
        #expect(s.source.address.version == c.version)
        #expect(s.capturedPayload == Frames.payload.count)
        #expect(s.wirePayload == Frames.payload.count)
        #expect(Array(c.frame[s.payloadOffset..<(s.payloadOffset + s.capturedPayload)]) == Frames.payload)
        if c.version == 4 {
            #expect(s.source.description == "198.51.100.10:40000")
        } else {
            #expect(s.source.description == "[2001:db8:1::10]:40000")
            #expect(s.destination.description == "[2001:db8:2::25]:25")
        }
    }

    @Test(arguments: linkCases)
    func everyTruncationIsHandled(_ c: LinkCase) throws {
        // Every prefix of a frame (a snap length cut anywhere) decodes or is refused; never traps.
        let decoder = PacketDecoder(linkType: try #require(LinkType(dlt: c.dlt)))
        for n in 0...c.frame.count {
            let prefix = Array(c.frame.prefix(n))
            let outcome = decoder.decode(prefix.span)
            if case .tcp(let s) = outcome {
                #expect(s.payloadOffset + s.capturedPayload <= n)
                #expect(s.wirePayload == Frames.payload.count, "the IP length still tells the wire size")
            }
        }
    }

    @Test func fragmentsGoToTheReassembler() {
        let decoder = PacketDecoder(linkType: .rawIP)
        let first = Frames.ipv4(Frames.tcp(), fragment: 0x2000)  // MF
        let later = Frames.ipv4(Array(Frames.payload), fragment: 0x0010)
        for frame in [first, later] {
            guard case .fragment = decoder.decode(frame.span) else {
                Issue.record("not a fragment")
                continue
            }
        }
        let v6frag = Frames.ipv6(Frames.tcp(), extensions: [(44, [0, 0x08, 0, 0, 0, 1])])
        guard case .fragment = decoder.decode(v6frag.span) else {
            Issue.record("IPv6 fragment not recognised")
            return
        }
    }

    @Test func nonTCPIsIgnored() {
        let decoder = PacketDecoder(linkType: .ethernet)
        let udp = Frames.ethernet(Frames.ipv4([0, 53, 0, 53, 0, 8, 0, 0], proto: 17))
        let arp = Frames.ethernet([UInt8](repeating: 0, count: 28), type: 0x0806)
        for frame in [udp, arp] {
            guard case .other = decoder.decode(frame.span) else {
                Issue.record("expected other traffic")
                continue
            }
        }
    }

    @Test func hostileHeadersNeverTrap() {
        var rng = SeededRandom(seed: 0x5eed)
        for dlt: Int32 in [0, 1, 12, 108, 113, 228, 229, 276] {
            let decoder = PacketDecoder(linkType: LinkType(dlt: dlt)!)
            for _ in 0..<5_000 {
                let n = Int.random(in: 0...120, using: &rng)
                var frame = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
                // Bias towards plausible headers so the deep paths run.
                if n > 20, Bool.random(using: &rng) { frame[0] = 0x45; frame[9 % n] = 6 }
                let outcome = decoder.decode(frame.span)
                if case .tcp(let s) = outcome { #expect(s.payloadOffset + s.capturedPayload <= n) }
            }
        }
    }

    @Test func ipv6TextFollowsRFC5952() {
        #expect(IPAddress(ipv6High: 0x2001_0db8_0000_0000, low: 0x0000_0000_0000_0001).description == "2001:db8::1")
        #expect(IPAddress(ipv6High: 0, low: 1).description == "::1")
        #expect(IPAddress(ipv6High: 0, low: 0).description == "::")
        #expect(IPAddress(ipv6High: 0x2001_0db8_0000_0001, low: 0x0000_0000_0001_0000).description == "2001:db8:0:1::1:0")
        #expect(IPAddress(ipv6High: 0x2001_0db8_0001_0000, low: 0x0001_0000_0000_0001).description == "2001:db8:1:0:1::1")
    }
}
