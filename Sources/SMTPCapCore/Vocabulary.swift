/// Which way bytes travel in an SMTP session.
public enum Direction: Int, Sendable, Hashable {
    case clientToServer = 0
    case serverToClient = 1

    public var reversed: Direction { self == .clientToServer ? .serverToClient : .clientToServer }
}

/// A capture timestamp (UTC), nanosecond resolution.
public struct Timestamp: Sendable, Hashable, Comparable {
    public var seconds: Int64
    public var nanoseconds: Int32

    public init(seconds: Int64, nanoseconds: Int32) {
        self.seconds = seconds
        self.nanoseconds = nanoseconds
    }

    public static let zero = Timestamp(seconds: 0, nanoseconds: 0)

    /// A capture's time stamp, its seconds kept within ±2^40 (35,000 years): a pcapng file's
    /// 64-bit time stamps and offsets can say anything, and differences of them must not
    /// overflow.
    @inlinable
    public init(clamping seconds: Int64, nanoseconds: Int32) {
        // One unsigned comparison in the common case (this runs once a packet).
        if UInt64(bitPattern: seconds &+ (1 << 40)) <= 1 << 41 {
            self.seconds = seconds
        } else {
            self.seconds = seconds < 0 ? -(1 << 40) : 1 << 40
        }
        self.nanoseconds = nanoseconds
    }

    public static func < (a: Timestamp, b: Timestamp) -> Bool {
        a.seconds != b.seconds ? a.seconds < b.seconds : a.nanoseconds < b.nanoseconds
    }
}

/// Where a chunk of stream bytes came from: the capture frame (1-based, as Wireshark counts)
/// and its time.
public struct ChunkMeta: Sendable, Hashable {
    public var frame: UInt64
    public var timestamp: Timestamp

    public init(frame: UInt64, timestamp: Timestamp) {
        self.frame = frame
        self.timestamp = timestamp
    }
}

/// Why a direction ended.
public enum CloseReason: String, Sendable {
    case fin
    case rst
    /// No packet for longer than the idle timeout (capture time).
    case idle
    /// The connection table was full and this connection was the oldest, or the buffers of
    /// all connections passed their budget as this one grew.
    case evicted
    /// The capture ended (end of file, packet limit, signal) with the connection open.
    case endOfCapture = "end-of-capture"
}

/// How the server side of a connection was decided.
public enum ServerEvidence: String, Sendable {
    case handshake
    case port
    case greeting
    case guess
}

/// What the reassembler knows about a connection when it starts tracking it.
public struct ConnectionInfo: Sendable {
    public var id: UInt64
    public var client: Endpoint
    public var server: Endpoint
    public var serverEvidence: ServerEvidence
    /// The client's SYN was seen: the stream starts at its first byte.
    public var handshakeSeen: Bool
    public var firstFrame: UInt64
    public var start: Timestamp
    /// The flow key's context number (interface and tunnels; 0 for none).
    public var context: UInt32

    public init(id: UInt64, client: Endpoint, server: Endpoint, serverEvidence: ServerEvidence,
                handshakeSeen: Bool, firstFrame: UInt64, start: Timestamp, context: UInt32 = 0) {
        self.context = context
        self.id = id
        self.client = client
        self.server = server
        self.serverEvidence = serverEvidence
        self.handshakeSeen = handshakeSeen
        self.firstFrame = firstFrame
        self.start = start
    }
}

/// Per-direction TCP facts, reported when the connection ends.
public struct DirectionStats: Sendable, Hashable {
    /// Bytes delivered in order to the consumer.
    public var bytes: UInt64 = 0
    /// Gap events and the bytes they stood for (when known).
    public var gaps: Int = 0
    public var lostBytes: UInt64 = 0
    /// Segments that carried only bytes already delivered or held.
    public var retransmissions: Int = 0
    /// Segments that arrived ahead of a hole and were held.
    public var outOfOrder: Int = 0
    /// Overlapping copies whose bytes disagreed (first copy won).
    public var conflictingOverlaps: Int = 0
    /// Segments dropped as far out of window.
    public var outOfWindow: Int = 0
    public var finSeen = false
    public var rstSeen = false
    /// TTLs and SYN options this direction's packets carried.
    public var path = PathObservation()

    public init() {}
}

/// How `probe` came to a session: the target as given, the address it connected to, and the
/// MX host and preference that named the address (nil for a literal address).
public struct ProbeTag: Sendable, Hashable {
    public var target: String
    public var address: String
    public var mx: String?
    public var preference: Int?

    public init(target: String, address: String, mx: String?, preference: Int?) {
        self.target = target
        self.address = address
        self.mx = mx
        self.preference = preference
    }
}
