import PacketDecoding
import PcapSource
import Reporting
import SMTPCapCore
import TCPReassembly

/// One frame's way into the flow table: decoded, counted, filtered by port.
struct PacketPipeline {
    let decoder: PacketDecoder
    /// Files: the default port filter runs here, after decoding.
    let filterPorts: Bool
    let ports: PortSet
    var table: FlowTable<SessionFactory>
    var counts = PacketCounts()

    @inline(__always)
    mutating func handle(_ bytes: Span<UInt8>, meta: ChunkMeta) {
        switch decoder.decode(bytes) {
        case .tcp(let segment):
            if filterPorts && !ports.contains(segment.source.port) && !ports.contains(segment.destination.port) {
                counts.otherTCP += 1
            } else {
                table.process(segment, frame: bytes, meta: meta)
            }
        case .notTCP: counts.notTCP += 1
        case .fragment: counts.fragments += 1
        case .malformed: counts.malformed += 1
        }
    }
}

/// Frames that did not reach the flow table, by why.
struct PacketCounts {
    var otherTCP: UInt64 = 0
    var notTCP: UInt64 = 0
    var fragments: UInt64 = 0
    var malformed: UInt64 = 0
}

extension CaptureFacts {
    mutating func add(_ c: PacketCounts) {
        otherTCP += c.otherTCP
        notTCP += c.notTCP
        fragments += c.fragments
        malformed += c.malformed
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
