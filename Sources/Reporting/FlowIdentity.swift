import Crypto
import SMTPCapCore
import SMTPMachine

/// The names a session is joined by in other tools' records.
///
/// - `communityID`: the Community ID flow hash, version 1, seed 0, as Zeek, Suricata and Arkime
///   write it: SHA-1 over the seed, the two addresses, the protocol (6), a zero byte and the two
///   ports, the endpoints ordered (lower address first; on equal addresses, lower port), and
///   `1:` before the base64 of the digest.
/// - `uid`: smtpcap's own stable id: `S` and 16 hex digits of a SHA-1 over the client and
///   server endpoints and the session's first packet time. It is the same in every run over the
///   capture and in an evidence pcap cut from it (frame numbers are not part of it).
/// - `flowID`: EVE's `flow_id`, the uid's first 51 bits as a number (exact in every JSON
///   reader's doubles).
public struct FlowIdentity: Sendable {
    public let communityID: String
    public let uid: String
    public let flowID: UInt64

    public init(_ record: SessionRecord) {
        self.init(client: record.client, server: record.server, start: record.start)
    }

    public init(client: Endpoint, server: Endpoint, start: Timestamp) {
        communityID = Self.communityID(client, server, seed: 0)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(48)
        Self.append(client, to: &bytes)
        Self.append(server, to: &bytes)
        Self.appendBigEndian(UInt64(bitPattern: start.seconds), bytes: 8, to: &bytes)
        Self.appendBigEndian(UInt64(UInt32(bitPattern: start.nanoseconds)), bytes: 4, to: &bytes)
        var first: UInt64 = 0
        for (i, b) in Insecure.SHA1.hash(data: bytes).prefix(8).enumerated() { first |= UInt64(b) << (56 - 8 * UInt64(i)) }
        uid = "S" + Self.hex(first)
        flowID = first >> 13
    }

    /// Community ID v1 for TCP between two endpoints.
    public static func communityID(_ a: Endpoint, _ b: Endpoint, seed: UInt16) -> String {
        let (src, dst) = Self.ordered(a, b)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(40)
        appendBigEndian(UInt64(seed), bytes: 2, to: &bytes)
        appendAddress(src.address, to: &bytes)
        appendAddress(dst.address, to: &bytes)
        bytes.append(6)  // TCP
        bytes.append(0)
        appendBigEndian(UInt64(src.port), bytes: 2, to: &bytes)
        appendBigEndian(UInt64(dst.port), bytes: 2, to: &bytes)
        return "1:" + base64(Array(Insecure.SHA1.hash(data: bytes)))
    }

    /// The specification's order: the endpoint with the lower address bytes first, or on
    /// equal addresses the lower port.
    static func ordered(_ a: Endpoint, _ b: Endpoint) -> (Endpoint, Endpoint) {
        let ka = (a.address.high, a.address.low), kb = (b.address.high, b.address.low)
        if ka < kb || (ka == kb && a.port <= b.port) { return (a, b) }
        return (b, a)
    }

    static func appendAddress(_ address: IPAddress, to bytes: inout [UInt8]) {
        if address.isIPv6 {
            appendBigEndian(address.high, bytes: 8, to: &bytes)
            appendBigEndian(address.low, bytes: 8, to: &bytes)
        } else {
            appendBigEndian(address.low, bytes: 4, to: &bytes)
        }
    }

    static func append(_ endpoint: Endpoint, to bytes: inout [UInt8]) {
        bytes.append(endpoint.address.isIPv6 ? 6 : 4)
        appendAddress(endpoint.address, to: &bytes)
        appendBigEndian(UInt64(endpoint.port), bytes: 2, to: &bytes)
    }

    static func appendBigEndian(_ value: UInt64, bytes count: Int, to bytes: inout [UInt8]) {
        for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i)))) }
    }

    static func hex(_ value: UInt64) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for i in stride(from: 60, through: 0, by: -4) { out.append(digits[Int((value >> UInt64(i)) & 0xf)]) }
        return String(decoding: out, as: UTF8.self)
    }

    /// RFC 4648 base64 with padding.
    public static func base64(_ data: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
        var out: [UInt8] = []
        out.reserveCapacity((data.count + 2) / 3 * 4)
        var i = 0
        while i < data.count {
            let n = min(3, data.count - i)
            let b0 = UInt32(data[i]), b1 = n > 1 ? UInt32(data[i + 1]) : 0, b2 = n > 2 ? UInt32(data[i + 2]) : 0
            let v = b0 << 16 | b1 << 8 | b2
            out.append(alphabet[Int(v >> 18 & 63)])
            out.append(alphabet[Int(v >> 12 & 63)])
            out.append(n > 1 ? alphabet[Int(v >> 6 & 63)] : 0x3d)
            out.append(n > 2 ? alphabet[Int(v & 63)] : 0x3d)
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }
}
