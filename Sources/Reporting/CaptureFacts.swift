import SMTPCapCore
import TCPReassembly

/// Where a file's packets fall in its capture's frame numbers.
public struct FileFrames: Sendable {
    public var file: String
    public var firstFrame: UInt64
    public var lastFrame: UInt64
    /// The file continues the one read before it.
    public var continues: Bool

    public init(file: String, firstFrame: UInt64, lastFrame: UInt64, continues: Bool) {
        self.file = file
        self.firstFrame = firstFrame
        self.lastFrame = lastFrame
        self.continues = continues
    }
}

/// Capture-level facts for the summary, filled by the engine.
public struct CaptureFacts: Sendable {
    public struct Drops: Sendable {
        public var received: UInt64
        public var dropped: UInt64
        public var interfaceDropped: UInt64
        public init(received: UInt64, dropped: UInt64, interfaceDropped: UInt64) {
            self.received = received
            self.dropped = dropped
            self.interfaceDropped = interfaceDropped
        }
    }
    public var files: [String] = []
    public var packets: UInt64 = 0
    public var fragments: UInt64 = 0
    public var malformed: UInt64 = 0
    public var notTCP: UInt64 = 0
    /// TCP packets on other ports (skipped by the default port filter).
    public var otherTCP: UInt64 = 0
    public var truncatedFile = false
    public var reassembly = ReassemblyStats()
    public var drops: Drops?
    /// IP reassembly: fragments seen (`fragments` above), datagrams rebuilt, lost.
    public var defragment = DefragmentStats()
    /// Packets decoded inside a tunnel.
    public var tunnelled: UInt64 = 0
    /// Packets in tunnels (or interfaces) past the number tracked at once: their sessions
    /// share one context, marked `too-many-tunnels`.
    public var tunnelsOverLimit: UInt64 = 0
    /// Malformed packets by reason (the decoder's stable codes).
    public var malformedReasons: [String: UInt64] = [:]
    /// Packets that reached no session, by what they were.
    public var otherTraffic = TrafficTally()
    /// Connections on the SMTP ports that carried no byte (a SYN, a refused connection).
    public var emptyConnections = 0
    /// Per file read, the frames it held in the numbering of its capture (a file continuing
    /// another goes on with its numbers, as in their `mergecap -a` merge).
    public var fileFrames: [FileFrames] = []
    public init() {}

    /// Adds the facts of another file's analysis.
    public mutating func merge(_ other: CaptureFacts) {
        files += other.files
        packets += other.packets
        fragments += other.fragments
        malformed += other.malformed
        notTCP += other.notTCP
        otherTCP += other.otherTCP
        truncatedFile = truncatedFile || other.truncatedFile
        reassembly.add(other.reassembly)
        defragment.add(other.defragment)
        tunnelled += other.tunnelled
        tunnelsOverLimit += other.tunnelsOverLimit
        malformedReasons.merge(other.malformedReasons, uniquingKeysWith: +)
        otherTraffic.merge(other.otherTraffic)
        emptyConnections += other.emptyConnections
        fileFrames += other.fileFrames
    }
}
