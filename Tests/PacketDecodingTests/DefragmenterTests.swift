import PacketDecoding
import SMTPCapCore
import SMTPCapTestSupport
import Testing

/// Fragments of one datagram, cut as a router would (RFC 791 §3.2, RFC 8200 §4.5).
enum Fragments {
    static let body = Array((0..<1200).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) })
    /// The TCP segment the datagram carries: a header and `body`.
    static let segment = Frames.tcp(payload: body)

    /// IPv4 fragments of `segment`, each carrying `size` bytes (a multiple of 8) but the last.
    static func v4(size: Int, id: UInt16 = 0x1234, segment: [UInt8] = segment) -> [[UInt8]] {
        stride(from: 0, to: segment.count, by: size).map { start in
            let end = min(segment.count, start + size)
            let more: UInt16 = end < segment.count ? 0x2000 : 0
            var f = Frames.ipv4(Array(segment[start..<end]), fragment: more | UInt16(start / 8))
            f[4] = UInt8(id >> 8)
            f[5] = UInt8(id & 0xff)
            return f
        }
    }

    /// IPv6 fragments: a fragment header (next header TCP) before each piece.
    static func v6(size: Int, id: UInt32 = 0xabcd_0001, segment: [UInt8] = segment) -> [[UInt8]] {
        stride(from: 0, to: segment.count, by: size).map { start in
            let end = min(segment.count, start + size)
            let field = UInt16(start) | (end < segment.count ? 1 : 0)
            let header: [UInt8] = [6, 0, UInt8(field >> 8), UInt8(field & 0xff),
                                   UInt8(id >> 24), UInt8((id >> 16) & 0xff), UInt8((id >> 8) & 0xff), UInt8(id & 0xff)]
            let piece = Array(segment[start..<end])
            var f = Frames.ipv6(piece)
            f[6] = 44  // next header: fragment
            let length = 8 + piece.count
            f[4] = UInt8(length >> 8)
            f[5] = UInt8(length & 0xff)
            f.replaceSubrange(40..<40, with: header)
            return f
        }
    }
}

@Suite("IP reassembly")
struct DefragmenterTests {
    static let t0 = Timestamp(seconds: 1_000, nanoseconds: 0)

    /// Feeds frames in the given order; returns the datagrams completed and the reassembler.
    static func feed(_ frames: [[UInt8]], limits: DefragmentLimits = DefragmentLimits(),
                     times: [Timestamp]? = nil) -> ([[UInt8]], Defragmenter) {
        var d = Defragmenter(limits: limits)
        var out: [[UInt8]] = []
        let decoder = PacketDecoder(linkType: .rawIP)
        for (i, frame) in frames.enumerated() {
            guard case .fragment(let f) = decoder.decode(frame.span) else {
                Issue.record("frame \(i) is not a fragment")
                continue
            }
            if let datagram = d.add(f, frame: frame.span, tunnel: TunnelStack(), time: times?[i] ?? t0) { out.append(datagram) }
        }
        return (out, d)
    }

    /// The reassembled datagram decodes to the original segment.
    static func expectWhole(_ datagram: [UInt8], _ comment: Comment) {
        var stack = TunnelStack()
        guard case .tcp(let s) = PacketDecoder(linkType: .rawIP).decodeDatagram(datagram.span, tunnel: &stack) else {
            Issue.record("\(comment): the datagram does not decode")
            return
        }
        #expect(s.destination.port == 25, comment)
        #expect(s.wirePayload == Fragments.body.count, comment)
        #expect(Array(datagram[s.payloadOffset..<(s.payloadOffset + s.capturedPayload)]) == Fragments.body, comment)
    }

    @Test(arguments: [16, 24, 256, 576, 1024])
    func everyOrderOfIPv4FragmentsMakesTheDatagram(size: Int) {
        let frames = Fragments.v4(size: size)
        var rng = SeededRandom(seed: UInt64(size))
        // In order, reversed, and shuffled; each with a duplicate of one fragment.
        var orders = [Array(frames.indices), frames.indices.reversed()]
        for _ in 0..<20 { orders.append(frames.indices.shuffled(using: &rng)) }
        for order in orders {
            var sequence = order.map { frames[$0] }
            sequence.insert(frames[order[0]], at: Int.random(in: 0...sequence.count, using: &rng))
            let (datagrams, d) = Self.feed(sequence)
            #expect(datagrams.count == 1, "order \(order.prefix(8))")
            if let first = datagrams.first { Self.expectWhole(first, "IPv4 fragments of \(size)") }
            #expect(d.stats.conflictingOverlaps == 0)
            // A copy that comes after the datagram was rebuilt starts a new one, left to time
            // out (as a kernel's reassembly queue does).
            #expect(d.pendingDatagrams <= 1)
        }
    }

    @Test(arguments: [16, 64, 512])
    func everyOrderOfIPv6FragmentsMakesTheDatagram(size: Int) {
        let frames = Fragments.v6(size: size)
        var rng = SeededRandom(seed: 0x66 &+ UInt64(size))
        for _ in 0..<20 {
            let (datagrams, _) = Self.feed(frames.shuffled(using: &rng))
            #expect(datagrams.count == 1)
            if let first = datagrams.first { Self.expectWhole(first, "IPv6 fragments of \(size)") }
        }
    }

    @Test func overlappingFragmentsKeepTheFirstCopyAndCountConflicts() {
        let frames = Fragments.v4(size: 400)
        // The same bytes again over a fragment boundary: no conflict.
        let same = Fragments.v4(size: 800, segment: Fragments.segment)[0]
        var (datagrams, d) = Self.feed([frames[0], same, frames[1], frames[2], frames[3]])
        #expect(datagrams.count == 1)
        #expect(d.stats.conflictingOverlaps == 0)
        // Other bytes over the second fragment's place, sent after it: counted, and the first
        // copy is what the datagram holds.
        var forged = frames[1]
        for i in 20..<forged.count { forged[i] ^= 0xff }
        (datagrams, d) = Self.feed([frames[0], frames[1], forged, frames[2], frames[3]])
        #expect(d.stats.conflictingOverlaps == 1)
        #expect(datagrams.count == 1)
        if let first = datagrams.first { Self.expectWhole(first, "first copy wins") }
    }

    @Test func incompleteDatagramsTimeOutInCaptureTime() {
        let frames = Fragments.v4(size: 400)
        let late = Timestamp(seconds: Self.t0.seconds + 31, nanoseconds: 0)
        // The last fragment comes after the timeout: the datagram was dropped, never rebuilt.
        let (datagrams, d) = Self.feed(Array(frames.dropLast()) + [frames.last!],
                                       times: Array(repeating: Self.t0, count: frames.count - 1) + [late])
        #expect(datagrams.isEmpty)
        #expect(d.stats.incomplete == 1)
        #expect(d.pendingDatagrams == 1, "the late fragment starts a new datagram")
        var rest = d
        rest.finish()
        #expect(rest.stats.incomplete == 2)
        #expect(rest.stats.leftOver == UInt64(frames.count))
    }

    @Test func capsDropDatagramsAndCountThem() {
        var limits = DefragmentLimits()
        limits.maxFragmentsPerDatagram = 10
        let tiny = Fragments.v4(size: 8)  // 151 fragments
        var (datagrams, d) = Self.feed(tiny, limits: limits)
        #expect(datagrams.isEmpty)
        #expect(d.stats.dropped >= 1)

        limits = DefragmentLimits()
        limits.maxDatagrams = 4
        // Twenty datagrams each missing its last fragment: at most four are held.
        var frames: [[UInt8]] = []
        for id in 0..<20 { frames.append(Fragments.v4(size: 400, id: UInt16(id))[0]) }
        (datagrams, d) = Self.feed(frames, limits: limits)
        #expect(d.pendingDatagrams <= 4)
        #expect(d.stats.dropped >= 16)

        limits = DefragmentLimits()
        limits.maxHeldBytes = 2_000
        frames = []
        for id in 0..<20 { frames.append(Fragments.v4(size: 800, id: UInt16(id))[0]) }
        (datagrams, d) = Self.feed(frames, limits: limits)
        #expect(d.pendingDatagrams <= 3)
    }

    @Test func theSameFragmentsOnTwoInterfacesAreTwoDatagrams() {
        // dumpcap -i eth0 -i any: every fragment twice, once per interface.
        let frames = Fragments.v4(size: 400)
        var d = Defragmenter()
        var made: [Int32] = []
        let decoder = PacketDecoder(linkType: .rawIP)
        for frame in frames {
            for interface: Int32 in [0, 1] {
                guard case .fragment(let f) = decoder.decode(frame.span) else { continue }
                if d.add(f, frame: frame.span, tunnel: TunnelStack(), interface: interface, time: Self.t0) != nil { made.append(interface) }
            }
        }
        #expect(made == [0, 1])
        #expect(d.stats.conflictingOverlaps == 0)
    }

    @Test func aFragmentCutBySnapLengthDropsItsDatagram() {
        var frames = Fragments.v4(size: 400)
        frames[1].removeLast(10)  // the IP length still says 400
        let (datagrams, d) = Self.feed(frames)
        #expect(datagrams.isEmpty)
        #expect(d.stats.dropped == 1)
    }

    @Test func contradictoryEndsDropTheDatagram() {
        let frames = Fragments.v4(size: 400)
        var early = frames[1]
        early[6] &= 0xdf  // clear MF: a second "last" fragment ending elsewhere
        let (datagrams, d) = Self.feed([frames.last!, early] + frames)
        #expect(d.stats.dropped >= 1)
        #expect(datagrams.count <= 1)
    }

    @Test func fragmentFloodStaysBounded() {
        var rng = SeededRandom(seed: 0xf1)
        var limits = DefragmentLimits()
        limits.maxHeldBytes = 64 << 10
        limits.maxDatagrams = 256
        var d = Defragmenter(limits: limits)
        let decoder = PacketDecoder(linkType: .rawIP)
        for i in 0..<20_000 {
            let id = UInt16.random(in: 0...UInt16.max, using: &rng)
            let offset = UInt16.random(in: 0...500, using: &rng)
            let frame = Frames.ipv4([UInt8](repeating: UInt8(i & 0xff), count: 64), fragment: 0x2000 | offset)
            var f = frame
            f[4] = UInt8(id >> 8)
            f[5] = UInt8(id & 0xff)
            guard case .fragment(let fragment) = decoder.decode(f.span) else { continue }
            _ = d.add(fragment, frame: f.span, tunnel: TunnelStack(), time: Self.t0)
            #expect(d.pendingDatagrams <= 256)
        }
        #expect(d.stats.dropped > 0)
    }
}
