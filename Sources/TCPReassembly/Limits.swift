/// Caps and timeouts of the reassembler. Every cap degrades (a gap, an eviction) and is
/// counted; none is fatal.
public struct ReassemblyLimits: Sendable {
    /// Connections tracked at once; past it the least recently active are evicted.
    public var maxConnections: Int = 28_928
    /// Out-of-order bytes held per direction.
    public var maxHeldBytesPerDirection: Int = 1 << 20
    /// Out-of-order bytes held across all connections.
    public var maxHeldBytesTotal: Int = (226 << 20) / 8
    /// The consumers' buffers (`StreamConsumer.bufferedBytes`) across all connections; past
    /// it, the connections holding the most are evicted until an eighth of it is free.
    public var maxBufferedBytesTotal: Int = (226 << 20) / 8
    /// A connection with no packet for this long (capture time) goes dormant, and is ended
    /// when it stays so for as long again; a packet in between resumes it.
    public var idleTimeoutSeconds: Int64 = 660
    /// A segment this far ahead of the next expected byte, which the peer has not
    /// acknowledged, is not held or skipped to: it is dropped as out of window.
    public var maxJumpAhead: Int = 16 << 20

    public init() {}

    /// Limits that keep an offline run's peak memory under about `mebibytes` MiB. The process
    /// itself (runtime, libpcap, sessions waiting to be printed, the summary) takes about
    /// 30 MiB (OpenSSL's libraries and the provider knowledge included), and up to 4 MiB more
    /// of a capture file read through its mapping; of the rest, half goes to tracked
    /// connections at about 4 KiB each (flow with its path evidence, SMTP machine and record at
    /// rest, the evicted-key ring), an eighth to out-of-order bytes and an eighth to the SMTP
    /// machines' buffers. 256 MiB gives 28,928 connections and 28.25 MiB + 28.25 MiB. bench/run.sh hostile measures the peaks. A live capture adds libpcap's 32 MiB
    /// kernel ring.
    public static func forMemory(mebibytes: Int) -> ReassemblyLimits {
        var l = ReassemblyLimits()
        let usable = max(8, mebibytes - 30)
        l.maxConnections = max(64, usable * 1024 / 8)
        l.maxHeldBytesTotal = (usable << 20) / 8
        l.maxBufferedBytesTotal = (usable << 20) / 8
        l.maxHeldBytesPerDirection = min(l.maxHeldBytesPerDirection, l.maxHeldBytesTotal)
        return l
    }
}

/// Counters of what the reassembler did with the capture.
public struct ReassemblyStats: Sendable, Hashable {
    public var connections: UInt64 = 0
    public var evicted: UInt64 = 0
    public var expired: UInt64 = 0
    public var heldOverflows: UInt64 = 0
    /// Packets with payload for a connection already ended (late retransmissions).
    public var strayPackets: UInt64 = 0
    /// Segments so far ahead of the stream (more than `maxJumpAhead`, unacknowledged) that
    /// no loss explains them: dropped, not held.
    public var outOfWindow: UInt64 = 0
    /// Connections ended because the consumers' buffers together passed their budget. Their
    /// later packets are dropped (counted as stray), not taken for a new connection.
    public var evictedForMemory: UInt64 = 0
    /// Connections that went on after being idle past the timeout.
    public var resumed: UInt64 = 0
    public init() {}

    public mutating func add(_ o: ReassemblyStats) {
        connections += o.connections
        evicted += o.evicted
        expired += o.expired
        heldOverflows += o.heldOverflows
        strayPackets += o.strayPackets
        outOfWindow += o.outOfWindow
        evictedForMemory += o.evictedForMemory
        resumed += o.resumed
    }
}
