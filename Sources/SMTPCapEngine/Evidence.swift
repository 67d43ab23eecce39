import PacketDecoding
import PcapSource
import SMTPCapCore

/// A session with findings, as the evidence writer needs it.
struct EvidenceSession: Sendable {
    /// Sessions kept for evidence per run; past it they are counted and a warning says so.
    static let maxSessions = 10_000

    var id: UInt64
    var uid: String
    var client: Endpoint
    var server: Endpoint
    var start: Timestamp
    var end: Timestamp
    var verdict: String
    var report: String
    /// Where the connection was seen: the tunnels around it and the interface's name (pcapng).
    var tunnel: TunnelStack
    var interface: String?

    /// `session-3-stripped-S1a2b3c4d5e6f7a8b`: the run's id, the verdict, and the stable uid
    /// (ids start again in each file of a multi-file run; the uid does not repeat).
    var name: String { "session-\(id)-\(verdict)-\(uid)" }

    /// Whether a packet at `time` between `a` and `b` belongs to this session: its endpoints
    /// (either direction) and its time span, with a grace for the last ACKs after the close.
    func holds(_ a: Endpoint, _ b: Endpoint, tunnel packetTunnel: TunnelStack, at time: Timestamp) -> Bool {
        ((a == client && b == server) || (a == server && b == client)) && packetTunnel == tunnel && inSpan(time)
    }

    /// The address pairs its IP fragments may carry: its own hosts', and each tunnel's
    /// outer endpoints (a fragmented tunnel packet).
    var hostPairs: [(IPAddress, IPAddress)] {
        [(client.address, server.address)] + tunnel.layers.compactMap { l in
            guard let s = l.outerSource, let d = l.outerDestination else { return nil }
            return (s, d)
        }
    }

    func inSpan(_ time: Timestamp) -> Bool {
        !(time < start) && time.seconds <= end.seconds + Self.graceSeconds
    }

    static let graceSeconds: Int64 = 2
}

/// Writes the evidence of sessions with findings: for each, a pcap of its packets (both
/// directions, in capture order, TLS included, IP fragments of its two hosts in its time
/// span) cut from the capture in a second pass, and its text report beside it. Files are
/// created new (an existing one is left alone and reported); symbolic links are refused.
struct EvidenceWriter {
    /// Sessions cut per pass over the capture (each holds an open file while it is cut).
    static let batch = 200

    let directory: String
    let warn: (String) -> Void

    /// Cuts `sessions` out of `files` (read in the order given). Returns the number of
    /// sessions written.
    func write(_ sessions: [EvidenceSession], files: [String]) -> Int {
        var written = 0
        var start = 0
        while start < sessions.count {
            let part = Array(sessions[start..<min(sessions.count, start + Self.batch)])
            start += part.count
            written += cut(part, files: files)
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
        var packets = 0
        var otherLinkType = 0
        var failed = false
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
            reading: while true {
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
                    case .fragment(let fragment):
                        owners = (byHosts[HostKey(fragment.source, fragment.destination)] ?? []).filter { sessions[$0].inSpan(time) }
                    case .other, .malformed:
                        continue
                    }
                    if let interface {
                        owners = owners.filter { sessions[$0].interface == nil || sessions[$0].interface == interface }
                    }
                    for i in owners { add(packet, to: outputs[i], session: sessions[i]) }
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
            let name = sessions[i].name
            if !writer.close() {
                warn("evidence: cannot write \(directory)/\(name).pcap")
                continue
            }
            if output.otherLinkType > 0 {
                warn("evidence: \(name).pcap: \(output.otherLinkType) packet(s) of another link type left out (a pcap file holds one)")
            }
            do {
                let fd = try System.createFile("\(directory)/\(name).txt", exclusive: true)
                defer { System.close(fd) }
                if !System.write(fd, Array(sessions[i].report.utf8)) { warn("evidence: cannot write \(directory)/\(name).txt") }
            } catch {
                warn("evidence: \(error.message)")
            }
            written += 1
        }
        return written
    }

    func add(_ packet: CapturedPacket, to output: Output, session: EvidenceSession) {
        if output.failed { return }
        if output.writer == nil {
            let path = "\(directory)/\(session.name).pcap"
            do {
                let fd = try System.createFile(path, exclusive: true)
                guard let writer = PcapWriter(fd: fd, linkType: packet.linkType) else {
                    warn("evidence: cannot start \(path)")
                    output.failed = true
                    return
                }
                output.writer = writer
                output.linkType = packet.linkType
            } catch {
                warn("evidence: \(error.message)")
                output.failed = true
                return
            }
        }
        guard packet.linkType == output.linkType else {
            output.otherLinkType += 1
            return
        }
        output.writer!.write(packet)
        output.packets += 1
    }
}
