import PacketDecoding
import PcapSource
import Reporting
import SMTPCapCore
import TCPReassembly

/// One frame's way into the flow table: decoded (through tunnels, with IP fragments
/// reassembled), counted, filtered by port, and keyed by the context it was seen in.
struct PacketPipeline {
    var decoder: PacketDecoder
    /// The link type `decoder` reads (pcapng files can change it from packet to packet).
    var decoderLinkType: Int32
    /// The default port filter runs here, after decoding (inside tunnels); live, the kernel's
    /// filter has already dropped most of what it drops.
    let filterPorts: Bool
    let ports: PortSet
    var table: FlowTable<SessionFactory>
    var defragmenter: Defragmenter
    let contexts: FlowContexts
    var tunnel = TunnelStack()
    var counts = PacketCounts()

    init(linkType: Int32, filterPorts: Bool, ports: PortSet, table: FlowTable<SessionFactory>,
         defragment: DefragmentLimits, contexts: FlowContexts) {
        let link = LinkType(dlt: linkType)
        decoder = PacketDecoder(linkType: link ?? .ethernet)
        // A link type not decoded: no packet may take the fast path, each is counted.
        decoderLinkType = link == nil ? -1 : linkType
        self.filterPorts = filterPorts
        self.ports = ports
        self.table = table
        defragmenter = Defragmenter(limits: defragment)
        self.contexts = contexts
    }

    /// A frame of the link type the pipeline was made for, seen on the file's interface 0.
    @inline(__always)
    mutating func handle(_ bytes: Span<UInt8>, meta: ChunkMeta) {
        tunnel.removeAll()
        switch decoder.decode(bytes, tunnel: &tunnel) {
        case .tcp(let segment):
            // Read in place (a copy of the segment costs more than the rest of this switch).
            guard wanted(segment) else { return skip(segment) }
            if tunnel.isEmpty { return table.process(segment, frame: bytes, meta: meta) }
            var inside = segment
            counts.tunnelled += 1
            inside.context = contextNumber(interface: 0)
            table.process(inside, frame: bytes, meta: meta)
        case .other(let what): counts.notTCP(what)
        case .fragment(let fragment): reassemble(fragment, frame: bytes, meta: meta, interface: 0)
        case .malformed(let error): counts.malformed(error)
        }
    }

    /// A frame of any link type on any interface (pcapng).
    mutating func handle(_ bytes: Span<UInt8>, meta: ChunkMeta, linkType: Int32, interface: Int32) {
        if linkType != decoderLinkType {
            guard let link = LinkType(dlt: linkType) else {
                counts.notTCP(OtherTraffic(.linkType, UInt32(bitPattern: linkType)))
                return
            }
            decoder = PacketDecoder(linkType: link)
            decoderLinkType = linkType
        }
        if interface == 0 { return handle(bytes, meta: meta) }
        tunnel.removeAll()
        switch decoder.decode(bytes, tunnel: &tunnel) {
        case .tcp(var segment):
            guard wanted(segment) else { return skip(segment) }
            if !tunnel.isEmpty { counts.tunnelled += 1 }
            segment.context = contextNumber(interface: interface)
            table.process(segment, frame: bytes, meta: meta)
        case .other(let what): counts.notTCP(what)
        case .fragment(let fragment): reassemble(fragment, frame: bytes, meta: meta, interface: interface)
        case .malformed(let error): counts.malformed(error)
        }
    }

    /// The context number of the packet just decoded (its tunnels are in `tunnel`).
    @inline(never)
    mutating func contextNumber(interface: Int32) -> UInt32 {
        if contexts.needsSweep { contexts.sweep(keeping: table.openContexts) }
        return contexts.number(interface: interface, tunnel: tunnel)
    }

    /// The default port filter: before a context is numbered, so traffic on other ports in
    /// tunnels costs no context.
    @inline(__always)
    func wanted(_ segment: TCPSegment) -> Bool {
        !filterPorts || ports.contains(segment.source.port) || ports.contains(segment.destination.port)
    }

    mutating func skip(_ segment: TCPSegment) {
        counts.otherTCP += 1
        if counts.tcpPorts.isEmpty { counts.tcpPorts = [UInt64](repeating: 0, count: 1 << 16) }
        counts.tcpPorts[Int(min(segment.source.port, segment.destination.port))] &+= 1
    }

    /// A fragment: held until its datagram is whole, which is then decoded inside the same
    /// tunnels. A datagram may hold a tunnel whose inner packet is a fragment again: the depth
    /// is bounded by the tunnel stack, which each such level grows.
    mutating func reassemble(_ fragment: IPFragment, frame: Span<UInt8>, meta: ChunkMeta, interface: Int32) {
        counts.fragments += 1
        guard let datagram = defragmenter.add(fragment, frame: frame, tunnel: tunnel, interface: interface,
                                              time: meta.timestamp) else { return }
        let outer = tunnel
        let span = datagram.span
        switch decoder.decodeDatagram(span, tunnel: &tunnel) {
        case .tcp(var segment):
            guard wanted(segment) else { return skip(segment) }
            if !tunnel.isEmpty { counts.tunnelled += 1 }
            if !tunnel.isEmpty || interface != 0 {
                segment.context = contextNumber(interface: interface)
            }
            table.process(segment, frame: span, meta: meta)
        case .other(let what): counts.notTCP(what)
        case .fragment(let inner):
            if tunnel.count > outer.count {
                reassemble(inner, frame: span, meta: meta, interface: interface)
            } else {
                counts.malformed(.badIPHeader)  // a rebuilt datagram is never itself a fragment
            }
        case .malformed(let error): counts.malformed(error)
        }
    }

    /// End of the capture: fragments never completed are counted as such.
    mutating func finish() -> DefragmentStats {
        defragmenter.finish()
        return defragmenter.stats
    }
}

/// Numbers the contexts connections are seen in (interface and tunnels), so the flow key
/// holds one word for them, and keeps each number's description for the session's report.
/// Shared by the pipeline (which numbers) and the session factory (which describes); one
/// thread. Numbers are never reused. Descriptions no open connection needs are swept when
/// their count has grown by a quarter, so a capture of endless distinct tunnels keeps about
/// as many as there are connections in the table.
final class FlowContexts {
    struct Key: Hashable {
        var interface: Int32
        var tunnel: TunnelStack
    }

    private var numbers: [Key: UInt32] = [:]
    private var described: [UInt32: FlowContext] = [:]
    private var next: UInt32 = 1
    /// Contexts held at most (a quarter of the connections tracked: each costs up to 1 KiB);
    /// past it, new ones share `overflow` until a sweep frees room.
    let limit: Int
    /// Packets given the overflow number.
    private(set) var overflowed: UInt64 = 0
    /// Sweep when this many are held: a quarter more than the last sweep kept (amortised,
    /// a sweep costs a few steps per context made).
    private var sweepAt = 4096
    /// The interface names of the file being read (pcapng), looked up as sessions end: nil
    /// when the file names none.
    var interfaceName: ((Int32) -> String?)?

    /// The number for interface 0 without a tunnel.
    static let plain: UInt32 = 0
    /// The number shared by contexts past the limit.
    static let overflow = UInt32.max

    init(limit: Int) {
        self.limit = limit
        sweepAt = min(sweepAt, limit)
    }

    /// Contexts refused since the table was last swept while full: a full table of live
    /// contexts is swept again only after a quarter of the limit more, not on every packet.
    private var refusedSinceSweep = 0

    var needsSweep: Bool {
        numbers.count >= sweepAt && (numbers.count < limit || refusedSinceSweep >= limit / 4)
    }

    func number(interface: Int32, tunnel: TunnelStack) -> UInt32 {
        let key = Key(interface: interface, tunnel: tunnel)
        if let n = numbers[key] { return n }
        guard numbers.count < limit else {
            overflowed += 1
            refusedSinceSweep += 1
            return Self.overflow
        }
        let n = next
        // After 2^32 numbers, on from 1 past those still held.
        repeat { next = next == Self.overflow - 1 ? 1 : next + 1 } while described[next] != nil
        described[n] = FlowContext(interface: interface, tunnel: tunnel.layers)
        numbers[key] = n
        return n
    }

    /// Forgets the contexts no open connection is in.
    func sweep(keeping open: Set<UInt32>) {
        numbers = numbers.filter { open.contains($0.value) }
        described = described.filter { open.contains($0.key) }
        sweepAt = min(limit, numbers.count + max(1024, numbers.count / 4))
        refusedSinceSweep = 0
    }

    /// The description of a context number, with the interface's name.
    func context(_ number: UInt32) -> FlowContext {
        if number == Self.overflow { return FlowContext(tunnel: [TunnelLayer(kind: .tooMany)]) }
        var c = described[number] ?? FlowContext()
        c.interfaceName = interfaceName?(c.interface ?? 0)
        return c
    }
}

/// Frames that did not reach the flow table, by why. TCP and UDP are counted by port in flat
/// tables (a mirror port's traffic is mostly not SMTP: no hashing per packet), folded into the
/// run's tally at its end.
struct PacketCounts {
    var otherTCP: UInt64 = 0
    var fragments: UInt64 = 0
    var malformed: UInt64 = 0
    var tunnelled: UInt64 = 0
    var notTCP: UInt64 = 0
    var malformedReasons: [DecodeError: UInt64] = [:]
    /// Made at the first such packet (a capture of SMTP alone never needs them).
    var tcpPorts: [UInt64] = []
    var udpPorts: [UInt64] = []
    /// The other kinds (IP protocols, EtherTypes, link types), rare enough to hash.
    var other = TrafficTally()

    @inline(__always)
    mutating func notTCP(_ what: OtherTraffic) {
        notTCP += 1
        if what.kind == .udp {
            if udpPorts.isEmpty { udpPorts = [UInt64](repeating: 0, count: 1 << 16) }
            udpPorts[Int(UInt16(truncatingIfNeeded: what.value))] &+= 1
        } else {
            other.add(what)
        }
    }

    mutating func malformed(_ error: DecodeError) {
        malformed += 1
        malformedReasons[error, default: 0] += 1
    }

    /// Everything counted, as one tally.
    var tally: TrafficTally {
        var t = other
        for (port, n) in tcpPorts.enumerated() where n > 0 { t.add(OtherTraffic(.tcp, UInt32(port)), n) }
        for (port, n) in udpPorts.enumerated() where n > 0 { t.add(OtherTraffic(.udp, UInt32(port)), n) }
        return t
    }
}

extension CaptureFacts {
    mutating func add(_ c: PacketCounts) {
        otherTCP += c.otherTCP
        notTCP += c.notTCP
        fragments += c.fragments
        malformed += c.malformed
        tunnelled += c.tunnelled
        for (error, n) in c.malformedReasons { malformedReasons[error.rawValue, default: 0] += n }
        otherTraffic.merge(c.tally)
    }
}

/// `--progress`: a line on standard error, at most twice a second.
struct ProgressLine {
    let enabled: Bool
    /// When the line was last written (the start, at first).
    var last: Double

    mutating func tick(_ source: PcapSource, sessions: Int, since start: Double, to errors: ReportOutput) {
        guard enabled else { return }
        let now = System.monotonicSeconds()
        guard now - last >= 0.5 else { return }
        last = now
        guard let size = source.fileSize, size > 0, let at = source.fileOffset else { return }
        let elapsed = now - start
        let rate = elapsed > 0 ? Double(at) / elapsed / 1e6 : 0
        let percent = Int(Double(at) * 100 / Double(size))
        errors.write("\rsmtpcap: \(at >> 20) of \(size >> 20) MiB (\(percent)%), \(sessions) sessions, \(Int(rate)) MB/s\u{1b}[K")
    }

    func clear(_ errors: ReportOutput) {
        if enabled { errors.write("\r\u{1b}[K") }
    }
}
