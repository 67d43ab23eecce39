import PacketDecoding
import SMTPCapCore
import SMTPCapTestSupport
import Testing

/// Encapsulation builders, laid out as RFC 7348 (VXLAN), RFC 8926 (Geneve), RFC 2784/2890
/// (GRE), draft-foschiano-erspan (ERSPAN II/III), RFC 3032 (MPLS) and RFC 2516 (PPPoE) say.
enum Tunnels {
    static let outerA: [UInt8] = [198, 51, 100, 200]
    static let outerB: [UInt8] = [203, 0, 113, 200]
    static let outer6A: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff] + [UInt8](repeating: 0, count: 9) + [1]
    static let outer6B: [UInt8] = [0x20, 0x01, 0x0d, 0xb8, 0, 0xff] + [UInt8](repeating: 0, count: 9) + [2]

    static func be16(_ v: UInt16) -> [UInt8] { [UInt8(v >> 8), UInt8(v & 0xff)] }
    static func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)] }

    static func outer4(_ payload: [UInt8], proto: UInt8, src: [UInt8] = outerA, dst: [UInt8] = outerB) -> [UInt8] {
        let total = 20 + payload.count
        return [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), 0, 7, 0x40, 0, 64, proto, 0, 0] + src + dst + payload
    }

    static func outer6(_ payload: [UInt8], next: UInt8, src: [UInt8] = outer6A, dst: [UInt8] = outer6B) -> [UInt8] {
        [0x60, 0, 0, 0] + be16(UInt16(payload.count)) + [next, 64] + src + dst + payload
    }

    static func udp(_ payload: [UInt8], src: UInt16 = 51_000, dst: UInt16) -> [UInt8] {
        be16(src) + be16(dst) + be16(UInt16(8 + payload.count)) + [0, 0] + payload
    }

    static func vxlan(_ inner: [UInt8], vni: UInt32) -> [UInt8] {
        [0x08, 0, 0, 0] + Array(be32(vni << 8)) + inner
    }

    static func geneve(_ inner: [UInt8], vni: UInt32, proto: UInt16 = 0x6558, options: [UInt8] = []) -> [UInt8] {
        [UInt8(options.count / 4), 0] + be16(proto) + be32(vni << 8) + options + inner
    }

    static func gre(_ inner: [UInt8], proto: UInt16, key: UInt32? = nil, sequence: UInt32? = nil, checksum: Bool = false) -> [UInt8] {
        var flags: UInt16 = 0
        if checksum { flags |= 0x8000 }
        if key != nil { flags |= 0x2000 }
        if sequence != nil { flags |= 0x1000 }
        var h = be16(flags) + be16(proto)
        if checksum { h += [0, 0, 0, 0] }
        if let key { h += be32(key) }
        if let sequence { h += be32(sequence) }
        return h + inner
    }

    static func erspan2(_ inner: [UInt8], session: UInt16) -> [UInt8] {
        [0x10, 0x00, UInt8((session >> 8) & 0x03), UInt8(session & 0xff), 0, 0, 0, 1] + inner
    }

    static func erspan3(_ inner: [UInt8], session: UInt16, subheader: Bool = false) -> [UInt8] {
        var h: [UInt8] = [0x20, 0x00, UInt8((session >> 8) & 0x03), UInt8(session & 0xff)]
        h += [0x12, 0x34, 0x56, 0x78]       // timestamp
        h += [0, 0, 0, subheader ? 1 : 0]   // SGT, flags; the last bit: a platform subheader follows
        if subheader { h += [UInt8](repeating: 0xaa, count: 8) }
        return h + inner
    }

    static func mpls(_ inner: [UInt8], labels: [UInt32]) -> [UInt8] {
        var h: [UInt8] = []
        for (i, label) in labels.enumerated() {
            h += be32(label << 12 | (i == labels.count - 1 ? 0x100 : 0) | 64)
        }
        return h + inner
    }

    static func pppoe(_ inner: [UInt8], session: UInt16, ppp: UInt16) -> [UInt8] {
        [0x11, 0x00] + be16(session) + be16(UInt16(inner.count + 2)) + be16(ppp) + inner
    }
}

struct TunnelCase: CustomStringConvertible, Sendable {
    var name: String
    var frame: [UInt8]
    var version: Int
    var layers: [String]
    var description: String { name }
}

let innerV4 = Frames.ipv4(Frames.tcp())
let innerV6 = Frames.ipv6(Frames.tcp())
let innerEth = Frames.ethernet(innerV4)
let tunnelCases: [TunnelCase] = [
    TunnelCase(name: "VXLAN 4789", frame: Frames.ethernet(Tunnels.outer4(Tunnels.udp(Tunnels.vxlan(innerEth, vni: 42), dst: 4789), proto: 17)),
               version: 4, layers: ["vxlan vni 42 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "VXLAN 8472 over IPv6", frame: Frames.ethernet(Tunnels.outer6(Tunnels.udp(Tunnels.vxlan(Frames.ethernet(innerV6, type: 0x86dd), vni: 7), dst: 8472), next: 17), type: 0x86dd),
               version: 6, layers: ["vxlan vni 7 2001:db8:ff::1 -> 2001:db8:ff::2"]),
    TunnelCase(name: "Geneve with an option", frame: Frames.ethernet(Tunnels.outer4(Tunnels.udp(Tunnels.geneve(innerEth, vni: 99, options: [0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef]), dst: 6081), proto: 17)),
               version: 4, layers: ["geneve vni 99 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "Geneve carrying IPv6", frame: Frames.ethernet(Tunnels.outer4(Tunnels.udp(Tunnels.geneve(innerV6, vni: 5, proto: 0x86dd), dst: 6081), proto: 17)),
               version: 6, layers: ["geneve vni 5 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "GRE with key and sequence", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(innerV4, proto: 0x0800, key: 1234, sequence: 9), proto: 47)),
               version: 4, layers: ["gre key 1234 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "GRE with checksum, over IPv6, carrying IPv6", frame: Frames.ethernet(Tunnels.outer6(Tunnels.gre(innerV6, proto: 0x86dd, checksum: true), next: 47), type: 0x86dd),
               version: 6, layers: ["gre 2001:db8:ff::1 -> 2001:db8:ff::2"]),
    TunnelCase(name: "GRE transparent Ethernet bridging", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(innerEth, proto: 0x6558, key: 5), proto: 47)),
               version: 4, layers: ["gre key 5 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "ERSPAN type I", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(innerEth, proto: 0x88be), proto: 47)),
               version: 4, layers: ["erspan-i 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "ERSPAN type II", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(Tunnels.erspan2(innerEth, session: 100), proto: 0x88be, sequence: 1), proto: 47)),
               version: 4, layers: ["erspan-ii session 100 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "ERSPAN type III", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(Tunnels.erspan3(innerEth, session: 513), proto: 0x22eb, sequence: 1), proto: 47)),
               version: 4, layers: ["erspan-iii session 513 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "ERSPAN type III with platform subheader", frame: Frames.ethernet(Tunnels.outer4(Tunnels.gre(Tunnels.erspan3(innerEth, session: 3, subheader: true), proto: 0x22eb, sequence: 1), proto: 47)),
               version: 4, layers: ["erspan-iii session 3 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "IP in IP", frame: Frames.ethernet(Tunnels.outer4(innerV4, proto: 4)),
               version: 4, layers: ["ip-in-ip 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "6in4", frame: Frames.ethernet(Tunnels.outer4(innerV6, proto: 41)),
               version: 6, layers: ["6in4 198.51.100.200 -> 203.0.113.200"]),
    TunnelCase(name: "4in6", frame: Frames.ethernet(Tunnels.outer6(innerV4, next: 4), type: 0x86dd),
               version: 4, layers: ["4in6 2001:db8:ff::1 -> 2001:db8:ff::2"]),
    TunnelCase(name: "6in6", frame: Frames.ethernet(Tunnels.outer6(innerV6, next: 41), type: 0x86dd),
               version: 6, layers: ["6in6 2001:db8:ff::1 -> 2001:db8:ff::2"]),
    TunnelCase(name: "MPLS, two labels", frame: Frames.ethernet(Tunnels.mpls(innerV4, labels: [100, 200]), type: 0x8847),
               version: 4, layers: ["mpls label 100"]),
    TunnelCase(name: "MPLS Ethernet pseudowire", frame: Frames.ethernet(Tunnels.mpls([0, 0, 0, 0] + innerEth, labels: [16]), type: 0x8847),
               version: 4, layers: ["mpls label 16"]),
    TunnelCase(name: "PPPoE IPv4", frame: Frames.ethernet(Tunnels.pppoe(innerV4, session: 0x11, ppp: 0x0021), type: 0x8864),
               version: 4, layers: ["pppoe session 17"]),
    TunnelCase(name: "PPPoE IPv6 under a VLAN tag", frame: Frames.ethernet(Tunnels.pppoe(innerV6, session: 2, ppp: 0x0057), type: 0x8864, tags: [0x8100]),
               version: 6, layers: ["pppoe session 2"]),
    TunnelCase(name: "MPLS inside GRE inside VXLAN", frame: Frames.ethernet(Tunnels.outer4(Tunnels.udp(Tunnels.vxlan(
        Frames.ethernet(Tunnels.outer4(Tunnels.gre(Tunnels.mpls(innerV4, labels: [300]), proto: 0x8847, key: 77), proto: 47,
                                       src: [198, 51, 100, 1], dst: [198, 51, 100, 2])), vni: 42), dst: 4789), proto: 17)),
               version: 4, layers: ["vxlan vni 42 198.51.100.200 -> 203.0.113.200", "gre key 77 198.51.100.1 -> 198.51.100.2", "mpls label 300"]),
]

@Suite("Tunnels")
struct TunnelTests {
    @Test(arguments: tunnelCases)
    func decodesTheSessionInside(_ c: TunnelCase) {
        var stack = TunnelStack()
        let outcome = PacketDecoder(linkType: .ethernet).decode(c.frame.span, tunnel: &stack)
        guard case .tcp(let s) = outcome else {
            Issue.record("\(c.name): \(outcome)")
            return
        }
        #expect(s.source.port == 40_000 && s.destination.port == 25)
        #expect(s.source.address.version == c.version)
        #expect(Array(c.frame[s.payloadOffset..<(s.payloadOffset + s.capturedPayload)]) == Frames.payload)
        #expect(stack.layers.map(\.description) == c.layers)
    }

    @Test(arguments: tunnelCases)
    func everyTruncationOfEveryHeaderIsHandled(_ c: TunnelCase) {
        // Every prefix: a refusal or a segment inside the prefix; never a trap, never a tunnel
        // layer left over from a packet that was refused.
        let decoder = PacketDecoder(linkType: .ethernet)
        for n in 0...c.frame.count {
            var stack = TunnelStack()
            let prefix = Array(c.frame.prefix(n))
            switch decoder.decode(prefix.span, tunnel: &stack) {
            case .tcp(let s):
                #expect(s.payloadOffset + s.capturedPayload <= n)
                #expect(stack.layers.map(\.description) == c.layers)
            case .malformed, .other:
                break
            case .fragment:
                Issue.record("\(c.name): a prefix of \(n) bytes taken for a fragment")
            }
        }
    }

    @Test func anExtensionHeaderPastTheFrameAfterAFragmentHeaderIsRefused() {
        // IPv6, a fragment header (offset 8, last) and then a destination-options header whose
        // length points past the frame: once a trap in the reassembler, reachable inside VXLAN.
        var frame = Frames.ipv6([60, 0, 0, 8, 0, 0, 0, 1] + [6, 1])
        frame[6] = 44
        for f in [frame, Frames.ethernet(Tunnels.outer4(Tunnels.udp(Tunnels.vxlan(Frames.ethernet(frame, type: 0x86dd), vni: 1), dst: 4789), proto: 17))] {
            for link in [LinkType.rawIP, .ethernet] where (link == .rawIP) == (f.count == frame.count) {
                var stack = TunnelStack()
                let outcome = PacketDecoder(linkType: link).decode(f.span, tunnel: &stack)
                var d = Defragmenter()
                if case .fragment(let fragment) = outcome {
                    #expect(fragment.payloadOffset + fragment.capturedLength <= f.count)
                    _ = d.add(fragment, frame: f.span, tunnel: stack, time: Timestamp(seconds: 1, nanoseconds: 0))
                }
            }
        }
    }

    @Test func extensionHeadersAfterTheFragmentHeaderAreTheDatagrams() {
        // A destination-options header after the fragment header belongs to the fragmentable
        // part: it is in the first fragment's data, and the rebuilt datagram walks it.
        let segment = [UInt8]([6, 0, 1, 4, 0, 0, 0, 0]) + Frames.tcp()  // options header, then TCP
        let cut = 16
        func piece(_ range: Range<Int>, more: Bool) -> [UInt8] {
            let field = UInt16(range.lowerBound) | (more ? 1 : 0)
            var f = Frames.ipv6([60, 0, UInt8(field >> 8), UInt8(field & 0xff), 0, 0, 0, 9] + Array(segment[range]))
            f[6] = 44
            return f
        }
        let frames = [piece(0..<cut, more: true), piece(cut..<segment.count, more: false)]
        var d = Defragmenter()
        var whole: [UInt8]?
        for f in frames.reversed() {
            guard case .fragment(let fragment) = PacketDecoder(linkType: .rawIP).decode(f.span) else {
                Issue.record("not a fragment")
                return
            }
            whole = d.add(fragment, frame: f.span, tunnel: TunnelStack(), time: Timestamp(seconds: 1, nanoseconds: 0)) ?? whole
        }
        var stack = TunnelStack()
        guard let whole, case .tcp(let s) = PacketDecoder(linkType: .rawIP).decodeDatagram(whole.span, tunnel: &stack) else {
            Issue.record("the datagram was not rebuilt into TCP")
            return
        }
        #expect(Array(whole[s.payloadOffset..<(s.payloadOffset + s.capturedPayload)]) == Frames.payload)
    }

    @Test func nestingPastTheCapIsRefused() {
        var frame = innerV4
        for _ in 0..<(TunnelStack.capacity + 1) { frame = Tunnels.outer4(frame, proto: 4) }
        var stack = TunnelStack()
        guard case .malformed(.tunnelTooDeep) = PacketDecoder(linkType: .rawIP).decode(frame.span, tunnel: &stack) else {
            Issue.record("nesting past the cap was not refused")
            return
        }
        // At the cap it still decodes.
        frame = innerV4
        for _ in 0..<TunnelStack.capacity { frame = Tunnels.outer4(frame, proto: 4) }
        stack = TunnelStack()
        guard case .tcp = PacketDecoder(linkType: .rawIP).decode(frame.span, tunnel: &stack) else {
            Issue.record("nesting at the cap was refused")
            return
        }
        #expect(stack.count == TunnelStack.capacity)
    }

    @Test func anMPLSStackWithoutBottomIsRefused() {
        let labels = [UInt8](repeating: 0, count: 4 * 20)  // no bottom-of-stack bit anywhere
        let frame = Frames.ethernet(labels + innerV4, type: 0x8847)
        guard case .malformed(.tunnelTooDeep) = PacketDecoder(linkType: .ethernet).decode(frame.span) else {
            Issue.record("a label stack without its bottom was not refused")
            return
        }
    }

    @Test func otherUDPAndUnknownGREAreOtherTraffic() {
        let decoder = PacketDecoder(linkType: .ethernet)
        let dns = Frames.ethernet(Tunnels.outer4(Tunnels.udp([1, 2, 3], src: 53, dst: 40_000), proto: 17))
        guard case .other(let what) = decoder.decode(dns.span) else { Issue.record("DNS"); return }
        #expect(what == OtherTraffic(.udp, 53))
        #expect(what.description == "UDP to port 53")
        // PPTP's enhanced GRE (version 1) is not decoded.
        let pptp = Frames.ethernet(Tunnels.outer4([0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0] + innerV4, proto: 47))
        guard case .other(let g) = decoder.decode(pptp.span) else { Issue.record("PPTP"); return }
        #expect(g == OtherTraffic(.ipProtocol, 47))
        // A VXLAN header without its I flag is not taken for VXLAN.
        let bad = Frames.ethernet(Tunnels.outer4(Tunnels.udp([0, 0, 0, 0, 0, 0, 42, 0] + innerEth, dst: 4789), proto: 17))
        guard case .other(let v) = decoder.decode(bad.span) else { Issue.record("VXLAN without I"); return }
        #expect(v.hint == "VXLAN?")
    }

    @Test func aTunnelIsTheSameWhicheverWayItFaces() {
        let a = IPAddress(ipv4: 0xc633_64c8), b = IPAddress(ipv4: 0xcb00_71c8)
        let there = TunnelLayer(kind: .vxlan, id: 42, outerSource: a, outerDestination: b)
        let back = TunnelLayer(kind: .vxlan, id: 42, outerSource: b, outerDestination: a)
        #expect(there == back)
        #expect(there.hashValue == back.hashValue)
        #expect(there != TunnelLayer(kind: .vxlan, id: 43, outerSource: a, outerDestination: b))
        #expect(there != TunnelLayer(kind: .geneve, id: 42, outerSource: a, outerDestination: b))
        // MPLS labels change hop by hop and per direction: not part of the identity.
        #expect(TunnelLayer(kind: .mpls, id: 100) == TunnelLayer(kind: .mpls, id: 200))
        #expect(TunnelStack([there]) == TunnelStack([back]))
        #expect(TunnelStack([there]) != TunnelStack([there, there]))
        #expect(TunnelStack([there]).hashValue == TunnelStack([back]).hashValue)
    }

    @Test func hostileTunnelBytesNeverTrap() {
        var rng = SeededRandom(seed: 0x7e11)
        let decoder = PacketDecoder(linkType: .ethernet)
        for c in tunnelCases {
            for _ in 0..<300 {
                var frame = c.frame
                // Flip a few bytes in the headers (before the inner TCP payload).
                for _ in 0..<Int.random(in: 1...4, using: &rng) {
                    frame[Int.random(in: 0..<(frame.count - Frames.payload.count), using: &rng)] = UInt8.random(in: 0...255, using: &rng)
                }
                var stack = TunnelStack()
                if case .tcp(let s) = decoder.decode(frame.span, tunnel: &stack) {
                    #expect(s.payloadOffset + s.capturedPayload <= frame.count)
                }
                #expect(stack.count <= TunnelStack.capacity)
            }
        }
    }
}
