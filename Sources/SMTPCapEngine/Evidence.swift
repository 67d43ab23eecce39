import PacketDecoding
import PcapSource
import SMTPCapCore
import Synchronization

/// A session with findings, as the evidence writer needs it.
struct EvidenceSession: Sendable {
    /// Sessions kept for evidence per run; past it they are counted and a warning says so.
    static let maxSessions = 10_000
    /// Packets after the session's last one still taken (the last ACKs after the close).
    static let graceSeconds: Int64 = 2

    var id: UInt64
    var uid: String
    /// The capture (unit of files) it came from, counted from 0.
    var unit: Int
    var client: Endpoint
    var server: Endpoint
    var start: Timestamp
    var end: Timestamp
    var verdict: String
    /// Where the connection was seen: the tunnels around it and the interface's name (pcapng).
    var tunnel: TunnelStack
    var interface: String?
    /// Several captures were analyzed: the name carries the capture's number (ids start again
    /// in each).
    var numbered = false

    /// `session-3-stripped-S1a2b3c4d5e6f7a8b` (`-f2` after it for the second capture of a
    /// multi-file run): the run's id, the verdict and the stable uid.
    var name: String { "session-\(id)-\(verdict)-\(uid)" + (numbered ? "-f\(unit + 1)" : "") }

    /// Whether a packet between `a` and `b` at `time` belongs to this session: its endpoints
    /// (either direction), its tunnels and its time span.
    func holds(_ a: Endpoint, _ b: Endpoint, tunnel packetTunnel: TunnelStack, at time: Timestamp) -> Bool {
        ((a == client && b == server) || (a == server && b == client)) && packetTunnel == tunnel && inSpan(time)
    }

    func inSpan(_ time: Timestamp) -> Bool {
        !(time < start) && time.seconds <= end.seconds + Self.graceSeconds
    }

    /// The address pairs its IP fragments may carry: its own hosts', and each tunnel's
    /// outer endpoints (a fragmented tunnel packet).
    var hostPairs: [(IPAddress, IPAddress)] {
        [(client.address, server.address)] + tunnel.layers.compactMap { l in
            guard let s = l.outerSource, let d = l.outerDestination else { return nil }
            return (s, d)
        }
    }
}

/// Writes the pcap of each session with findings: its packets (both directions, in capture
/// order, TLS included, IP fragments of its hosts and tunnels in its time span) cut from its
/// capture in a second pass at the end. Files are created new in the evidence directory's
/// descriptor (an existing one is left alone and reported; a symbolic link is refused), mode
/// 0600: they hold what crossed the wire in plaintext, credentials and bodies included.
struct EvidenceWriter {
    /// Sessions cut per pass over a capture (each holds an open file while it is cut).
    static let batch = 200

    let directory: Int32
    let name: String
    let owner: (uid: UInt32, gid: UInt32)?
    let warn: (String) -> Void

    /// Cuts each session out of the files of its unit. Returns the number written.
    func write(_ sessions: [EvidenceSession], units: [[String]]) -> Int {
        var written = 0
        for (index, files) in units.enumerated() {
            let mine = sessions.filter { $0.unit == index || (units.count == 1) }
            var start = 0
            while start < mine.count && !stopRequested.load(ordering: .relaxed) {
                let part = Array(mine[start..<min(mine.count, start + Self.batch)])
                start += part.count
                written += cut(part, files: files)
            }
        }
        return written
    }

    struct PairKey: Hashable {
        var low: Endpoint
        var high: Endpoint
        init(_ a: Endpoint, _ b: Endpoint) { (low, high) = a < b ? (a, b) : (b, a) }
    }

    struct HostKey: Hashable {
        var low: IPAddress
        var high: IPAddress
        init(_ a: IPAddress, _ b: IPAddress) { (low, high) = a < b ? (a, b) : (b, a) }
    }

    final class Output {
        var writer: PcapWriter?
        var linkType: Int32 = 0
        var otherLinkType = 0
        var failed = false
        /// A new connection on the same endpoints began (a SYN after the session's start).
        var ended = false
    }

    func cut(_ sessions: [EvidenceSession], files: [String]) -> Int {
        var byPair: [PairKey: [Int]] = [:]
        var byHosts: [HostKey: [Int]] = [:]
        for (i, s) in sessions.enumerated() {
            byPair[PairKey(s.client, s.server), default: []].append(i)
            for (a, b) in s.hostPairs { byHosts[HostKey(a, b), default: []].append(i) }
        }
        let outputs = sessions.map { _ in Output() }
        var decoders: [Int32: PacketDecoder] = [:]
        var tunnel = TunnelStack()
        for path in files {
            let source: PcapSource
            do { source = try PcapSource.openOffline(path) } catch {
                warn("evidence: \(error.message)")
                continue
            }
            reading: while !stopRequested.load(ordering: .relaxed) {
                switch source.next() {
                case .packet(let packet):
                    let time = Timestamp(clamping: packet.seconds, nanoseconds: packet.nanoseconds)
                    let interface = source.readsPcapng ? source.interfaceName(packet.interface) : nil
                    guard let link = LinkType(dlt: packet.linkType) else { continue }
                    if decoders[packet.linkType] == nil { decoders[packet.linkType] = PacketDecoder(linkType: link) }
                    tunnel.removeAll()
                    let decoded = packet.withBytes { decoders[packet.linkType]!.decode($0, tunnel: &tunnel) }
                    var owners: [Int] = []
                    switch decoded {
                    case .tcp(let segment):
                        owners = (byPair[PairKey(segment.source, segment.destination)] ?? []).filter {
                            sessions[$0].holds(segment.source, segment.destination, tunnel: tunnel, at: time)
                        }
                        if segment.flags.contains(.syn) && !segment.flags.contains(.ack) {
                            for i in owners where sessions[i].start < time { outputs[i].ended = true }
                        }
                    case .fragment(let fragment):
                        owners = (byHosts[HostKey(fragment.source, fragment.destination)] ?? []).filter { sessions[$0].inSpan(time) }
                    case .other, .malformed:
                        continue
                    }
                    if let interface {
                        owners = owners.filter { sessions[$0].interface == nil || sessions[$0].interface == interface }
                    }
                    for i in owners where !outputs[i].ended { add(packet, to: outputs[i], session: sessions[i]) }
                case .timeout:
                    continue
                case .end:
                    break reading
                case .error(let message):
                    warn("evidence: \(path): \(message)")
                    break reading
                }
            }
        }
        var written = 0
        for (i, output) in outputs.enumerated() {
            guard let writer = output.writer else { continue }
            let file = sessions[i].name + ".pcap"
            if !writer.close() {
                warn("evidence: cannot write \(name)/\(file)")
                continue
            }
            if output.otherLinkType > 0 {
                warn("evidence: \(file): \(output.otherLinkType) packet(s) of another link type left out (a pcap file holds one)")
            }
            written += 1
        }
        return written
    }

    func add(_ packet: CapturedPacket, to output: Output, session: EvidenceSession) {
        if output.failed { return }
        if output.writer == nil {
            let file = session.name + ".pcap"
            do {
                let fd = try System.createFile(in: directory, file, owner: owner)
                guard let writer = PcapWriter(fd: fd, linkType: packet.linkType) else {
                    warn("evidence: cannot start \(name)/\(file)")
                    output.failed = true
                    return
                }
                output.writer = writer
                output.linkType = packet.linkType
            } catch {
                warn("evidence: in \(name): \(error.message)")
                output.failed = true
                return
            }
        }
        guard packet.linkType == output.linkType else {
            output.otherLinkType += 1
            return
        }
        output.writer!.write(packet)
    }
}
