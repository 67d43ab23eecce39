/// A SYN or SYN-ACK's TCP options, kept small: their kinds in wire order (up to 16) and the
/// two values a fingerprint shows (MSS and window scale). Made by the decoder for SYN
/// packets only; shown as `mss=1460,sack,ts,nop,wscale=7`.
public struct TCPOptionsPrint: Sendable, Hashable {
    public static let capacity = 16
    /// Kinds, one byte each, first in the low byte of `low`.
    var low: UInt64 = 0
    var high: UInt64 = 0
    public private(set) var count: UInt8 = 0
    public var mss: UInt16 = 0
    public var windowScale: UInt8 = 0
    /// More than `capacity` options, or an option whose length ran past the header.
    public var truncated = false

    public init() {}

    public func kind(at i: Int) -> UInt8 {
        let word = i < 8 ? low : high
        return UInt8(truncatingIfNeeded: word >> UInt64((i & 7) * 8))
    }

    mutating func append(_ kind: UInt8) {
        guard Int(count) < Self.capacity else { truncated = true; return }
        let i = Int(count)
        if i < 8 { low |= UInt64(kind) << UInt64(i * 8) } else { high |= UInt64(kind) << UInt64((i - 8) * 8) }
        count += 1
    }

    /// Reads the options area of a TCP header (the bytes between the fixed 20-byte header
    /// and the payload). Stops at End of Options; never reads past `options`.
    public init(_ options: Span<UInt8>) {
        var at = 0
        let n = options.count
        while at < n {
            let kind = options[at]
            if kind == 0 { break }
            if kind == 1 {
                append(1)
                at += 1
                continue
            }
            guard at + 1 < n else { truncated = true; break }
            let length = Int(options[at + 1])
            guard length >= 2, at + length <= n else { truncated = true; break }
            append(kind)
            if kind == 2 && length == 4 { mss = UInt16(options[at + 2]) << 8 | UInt16(options[at + 3]) }
            if kind == 3 && length == 3 { windowScale = options[at + 2] }
            at += length
        }
    }

    /// `mss=1460,sack,ts,nop,wscale=7`: kinds in wire order; `opt<kind>` for kinds without a
    /// short name; a trailing `...` when the options were cut.
    public var description: String {
        var parts: [String] = []
        for i in 0..<Int(count) {
            switch kind(at: i) {
            case 1: parts.append("nop")
            case 2: parts.append("mss=\(mss)")
            case 3: parts.append("wscale=\(windowScale)")
            case 4: parts.append("sack")
            case 5: parts.append("sackblk")
            case 8: parts.append("ts")
            case let k: parts.append("opt\(k)")
            }
        }
        if truncated { parts.append("...") }
        return parts.joined(separator: ",")
    }
}

/// What one direction's IP headers said about the path: the TTL (IPv4) or hop limit (IPv6)
/// of its SYN (or SYN-ACK), of its first packet with data, and of packets after the handshake
/// that differ from the first one. Kept by the reassembler per direction; a few compares per
/// packet.
public struct PathObservation: Sendable, Hashable {
    /// TTL of the first packet after the handshake (the first without SYN).
    public var firstTTL: UInt8 = 0
    /// A packet without SYN was seen (`firstTTL` is set).
    public var seen = false
    public var synTTL: UInt8?
    public var dataTTL: UInt8?
    /// Packets after the handshake whose TTL differed from the first one's, the first such TTL
    /// and its frame. The handshake itself is not compared: a SYN proxy or load balancer may
    /// answer the SYN from another hop than the server's data.
    public var ttlChanges = 0
    /// The changed TTL farthest from the first (the first of them) and how far it was.
    public var largestDeviation: UInt8 = 0
    public var changedTTL: UInt8?
    public var changedFrame: UInt64?
    /// The SYN's (SYN-ACK's) TCP options.
    public var synOptions: TCPOptionsPrint?

    public init() {}

    @inline(__always)
    public mutating func observe(ttl: UInt8, syn: Bool, data: Bool, frame: UInt64) {
        if _slowPath(syn) {
            if synTTL == nil { synTTL = ttl }
        } else if _slowPath(!seen) {
            seen = true
            firstTTL = ttl
        } else if _slowPath(ttl != firstTTL) {
            ttlChanges += 1
            let deviation = ttl > firstTTL ? ttl - firstTTL : firstTTL - ttl
            if changedTTL == nil || deviation > largestDeviation {
                changedTTL = ttl
                changedFrame = frame
                largestDeviation = deviation
            }
        }
        if _slowPath(data) && dataTTL == nil { dataTTL = ttl }
    }

    /// The TTL that stands for this side: its SYN's, else its first data packet's, else the
    /// first seen.
    public var ttl: UInt8? {
        synTTL ?? dataTTL ?? (seen ? firstTTL : nil)
    }

    /// The initial TTL a sender most likely used: the next of 32, 64, 128 and 255 at or above
    /// the one seen.
    public static func initialTTL(for ttl: UInt8) -> UInt8 {
        if ttl <= 32 { return 32 }
        if ttl <= 64 { return 64 }
        if ttl <= 128 { return 128 }
        return 255
    }
}
