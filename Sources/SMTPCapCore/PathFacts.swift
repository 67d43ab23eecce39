/// A SYN or SYN-ACK's TCP options, kept small: their kinds in wire order (up to 16) and the
/// two values a fingerprint shows (MSS and window scale). Made by the decoder for SYN
/// packets only; shown as `mss=1460,sack,ts,nop,wscale=7`.
public struct TCPOptionsPrint: Sendable, Hashable {
    /// Kinds kept: real stacks send five to eight options in a SYN-ACK.
    public static let capacity = 10
    /// Kinds, one byte each, first in the low byte of `low`; the ninth and tenth in `high`.
    var low: UInt64 = 0
    var high: UInt16 = 0
    public private(set) var count: UInt8 = 0
    public var mss: UInt16 = 0
    public var windowScale: UInt8 = 0
    /// More than `capacity` options, or an option whose length ran past the header.
    public var truncated = false

    public init() {}

    /// The options include a window scale (kind 3).
    public var hasWindowScale: Bool { (0..<Int(count)).contains { kind(at: $0) == 3 } }

    public func kind(at i: Int) -> UInt8 {
        i < 8 ? UInt8(truncatingIfNeeded: low >> UInt64(i * 8)) : UInt8(truncatingIfNeeded: high >> UInt16((i - 8) * 8))
    }

    mutating func append(_ kind: UInt8) {
        guard Int(count) < Self.capacity else { truncated = true; return }
        let i = Int(count)
        if i < 8 { low |= UInt64(kind) << UInt64(i * 8) } else { high |= UInt16(kind) << UInt16((i - 8) * 8) }
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
        withText { text in
            var out: [UInt8] = []
            out.append(span: text)
            return String(decoding: out, as: UTF8.self)
        }
    }

    /// The description as bytes, made in a fixed buffer (no heap): at most ten options of
    /// nine characters and a comma, and `,...`.
    public func withText<R>(_ body: (Span<UInt8>) -> R) -> R {
        var text = OptionsText()
        for i in 0..<Int(count) {
            if i > 0 { text.byte(0x2c) }
            switch kind(at: i) {
            case 1: text.word("nop")
            case 2: text.word("mss="); text.number(Int(mss))
            case 3: text.word("wscale="); text.number(Int(windowScale))
            case 4: text.word("sack")
            case 5: text.word("sackblk")
            case 8: text.word("ts")
            case let k: text.word("opt"); text.number(Int(k))
            }
        }
        if truncated { text.word(count > 0 ? ",..." : "...") }
        return body(text.bytes.span.extracting(0..<text.count))
    }
}

/// The fixed buffer `TCPOptionsPrint.withText` writes into.
struct OptionsText {
    var bytes = InlineArray<128, UInt8>(repeating: 0)
    var count = 0

    mutating func byte(_ b: UInt8) {
        guard count < 128 else { return }
        bytes[count] = b
        count += 1
    }

    mutating func word(_ s: StaticString) {
        s.withUTF8Buffer { for b in $0 { byte(b) } }
    }

    mutating func number(_ v: Int) {
        var divisor = 10_000
        var x = v
        var started = false
        while divisor > 0 {
            let d = x / divisor
            if d > 0 || started || divisor == 1 {
                byte(UInt8(d) + 0x30)
                started = true
            }
            x -= d * divisor
            divisor /= 10
        }
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
    public var ttlChanges: UInt32 = 0
    /// The changed TTL farthest from the first (the first of them) and how far it was.
    public var largestDeviation: UInt8 = 0
    public var changedTTL: UInt8?
    public var changedFrame: UInt64?
    /// The SYN's (SYN-ACK's) TCP options.
    public var synOptions: TCPOptionsPrint?

    public init() {}

    /// `seen` and `dataTTL` are both set: from here a packet with the first TTL and no SYN
    /// changes nothing, and is passed with two compares.
    public var settled = false

    @inlinable @inline(__always)
    public mutating func observe(ttl: UInt8, syn: Bool, data: Bool, frame: UInt64) {
        if _fastPath(settled && ttl == firstTTL && !syn) { return }
        record(ttl: ttl, syn: syn, data: data, frame: frame)
    }

    @usableFromInline
    mutating func record(ttl: UInt8, syn: Bool, data: Bool, frame: UInt64) {
        if syn {
            if synTTL == nil { synTTL = ttl }
        } else if !seen {
            seen = true
            firstTTL = ttl
        } else if ttl != firstTTL {
            ttlChanges &+= 1
            let deviation = ttl > firstTTL ? ttl - firstTTL : firstTTL - ttl
            if changedTTL == nil || deviation > largestDeviation {
                changedTTL = ttl
                changedFrame = frame
                largestDeviation = deviation
            }
        }
        if data && dataTTL == nil { dataTTL = ttl }
        settled = seen && dataTTL != nil
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

