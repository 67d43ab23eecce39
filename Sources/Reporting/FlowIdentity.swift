import SMTPCapCore
import SMTPMachine

/// The names a session is joined by in other tools' records.
///
/// - `communityID`: the Community ID flow hash, version 1, seed 0, as Zeek, Suricata and Arkime
///   write it: SHA-1 over the seed, the two addresses, the protocol (6), a zero byte and the two
///   ports, the endpoints ordered (lower address first; on equal addresses, lower port), and
///   `1:` before the base64 of the digest.
/// - `uid`: smtpcap's own stable id: `S` and 16 hex digits of a 64-bit mix of the client and
///   server endpoints and the session's first packet time. It is the same in every run over the
///   capture and in an evidence pcap cut from it (frame numbers are not part of it).
/// - `flowID`: EVE's `flow_id`, the uid's first 51 bits as a number (exact in every JSON
///   reader's doubles).
///
/// Held as numbers; the JSON writer appends the text straight into its buffer (a session line
/// makes no strings for them).
public struct FlowIdentity: Sendable {
    let digest: (UInt32, UInt32, UInt32, UInt32, UInt32)
    let uidValue: UInt64

    public var flowID: UInt64 { uidValue >> 13 }
    public var communityID: String { text { appendCommunityID(into: $0) } }
    public var uid: String { text { appendUID(into: $0) } }

    public init(_ record: SessionRecord) {
        self.init(client: record.client, server: record.server, start: record.start, tunnel: record.tunnel)
    }

    /// The tunnels take part in the uid (two VNIs carrying the same inner connection are two
    /// sessions); the capture interface does not (an evidence pcap does not keep its name:
    /// the same connection seen on two interfaces has one uid, as it has one Community ID).
    public init(client: Endpoint, server: Endpoint, start: Timestamp, tunnel: [TunnelLayer] = []) {
        digest = Self.communityDigest(client, server, seed: 0)
        // Not a cryptographic hash: a 64-bit mix of the fields (splitmix64's finalizer), enough
        // to tell sessions apart and cheap per session.
        var h: UInt64 = 0x5354_4d43_4150_7569
        h = Self.mix(h ^ client.address.high)
        h = Self.mix(h ^ client.address.low)
        h = Self.mix(h ^ (UInt64(client.port) << 1 | (client.address.isIPv6 ? 1 : 0)))
        h = Self.mix(h ^ server.address.high)
        h = Self.mix(h ^ server.address.low)
        h = Self.mix(h ^ UInt64(server.port))
        h = Self.mix(h ^ UInt64(bitPattern: start.seconds))
        h = Self.mix(h ^ UInt64(UInt32(bitPattern: start.nanoseconds)))
        for layer in tunnel {
            // Order-free in the outer addresses, as a layer's identity is.
            let (a, b) = (layer.outerSource ?? IPAddress(ipv4: 0), layer.outerDestination ?? IPAddress(ipv4: 0))
            let (low, high) = a < b ? (a, b) : (b, a)
            for b in layer.kind.name.utf8 { h = Self.mix(h ^ UInt64(b)) }
            h = Self.mix(h ^ UInt64(layer.kind == .mpls || !layer.hasID ? 0 : layer.id))
            h = Self.mix(h ^ low.high ^ low.low)
            h = Self.mix(h ^ high.high ^ high.low)
        }
        uidValue = h
    }

    /// Community ID v1 for TCP between two endpoints.
    public static func communityID(_ a: Endpoint, _ b: Endpoint, seed: UInt16) -> String {
        Self(digest: communityDigest(a, b, seed: seed), uidValue: 0).communityID
    }

    init(digest: (UInt32, UInt32, UInt32, UInt32, UInt32), uidValue: UInt64) {
        self.digest = digest
        self.uidValue = uidValue
    }

    static func communityDigest(_ a: Endpoint, _ b: Endpoint, seed: UInt16) -> (UInt32, UInt32, UInt32, UInt32, UInt32) {
        let (src, dst) = Self.ordered(a, b)
        var m = ShortMessage()
        m.appendBigEndian(UInt64(seed), bytes: 2)
        appendAddress(src.address, to: &m)
        appendAddress(dst.address, to: &m)
        m.append(6)  // TCP
        m.append(0)
        m.appendBigEndian(UInt64(src.port), bytes: 2)
        m.appendBigEndian(UInt64(dst.port), bytes: 2)
        return m.sha1()
    }

    /// `1:` and the base64 of the 20 digest bytes (27 characters and one pad), taken three
    /// bytes at a time from the big-endian words.
    public func appendCommunityID(into out: ByteSink) {
        out.append(0x31, 0x3a)
        var i = 0
        while i < 20 {
            let v = byte(i) << 16 | (i + 1 < 20 ? byte(i + 1) << 8 : 0) | (i + 2 < 20 ? byte(i + 2) : 0)
            out.append(Self.base64Alphabet[Int(v >> 18 & 63)])
            out.append(Self.base64Alphabet[Int(v >> 12 & 63)])
            out.append(Self.base64Alphabet[Int(v >> 6 & 63)])
            out.append(i + 2 < 20 ? Self.base64Alphabet[Int(v & 63)] : 0x3d)
            i += 3
        }
    }

    /// `S` and 16 lower-case hex digits.
    public func appendUID(into out: ByteSink) {
        out.append(0x53)
        for i in 0..<16 { out.append(Self.hexDigits[Int((uidValue >> UInt64(60 - 4 * i)) & 0xf)]) }
    }

    @inline(__always)
    func byte(_ i: Int) -> UInt32 {
        let word: UInt32
        switch i >> 2 {
        case 0: word = digest.0
        case 1: word = digest.1
        case 2: word = digest.2
        case 3: word = digest.3
        default: word = digest.4
        }
        return word >> (24 - 8 * UInt32(i & 3)) & 0xff
    }

    func text(_ write: (ByteSink) -> Void) -> String {
        let sink = ByteSink(capacity: 32)
        write(sink)
        return withExtendedLifetime(sink) { String(decoding: sink.bytes, as: UTF8.self) }
    }

    @inline(__always)
    static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The specification's order: the endpoint with the lower address bytes first, or on
    /// equal addresses the lower port.
    static func ordered(_ a: Endpoint, _ b: Endpoint) -> (Endpoint, Endpoint) {
        let ka = (a.address.high, a.address.low), kb = (b.address.high, b.address.low)
        if ka < kb || (ka == kb && a.port <= b.port) { return (a, b) }
        return (b, a)
    }

    static func appendAddress(_ address: IPAddress, to m: inout ShortMessage) {
        if address.isIPv6 {
            m.appendBigEndian(address.high, bytes: 8)
            m.appendBigEndian(address.low, bytes: 8)
        } else {
            m.appendBigEndian(address.low, bytes: 4)
        }
    }

    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)
    static let base64Alphabet: [UInt8] = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    /// RFC 4648 base64 with padding.
    public static func base64(_ data: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var i = 0
        while i < data.count {
            let n = min(3, data.count - i)
            let b0 = UInt32(data[i]), b1 = n > 1 ? UInt32(data[i + 1]) : 0, b2 = n > 2 ? UInt32(data[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(base64Alphabet[Int(v >> 18 & 63)])
            out.append(base64Alphabet[Int(v >> 12 & 63)])
            out.append(n > 1 ? base64Alphabet[Int(v >> 6 & 63)] : 0x3d)
            out.append(n > 2 ? base64Alphabet[Int(v & 63)] : 0x3d)
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
