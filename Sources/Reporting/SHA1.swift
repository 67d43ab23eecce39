/// SHA-1 (RFC 3174) of a message of at most 55 bytes (one block), for the Community ID and
/// the session uid: a few dozen bytes per session, where a general-purpose hashing library's
/// generic entry points cost more than the hash itself. Not for anything secret.
struct ShortMessage {
    static let capacity = 55
    /// The block as big-endian words, filled as bytes are appended.
    var words = InlineArray<16, UInt32>(repeating: 0)
    private(set) var count = 0

    @inline(__always)
    mutating func append(_ byte: UInt8) {
        precondition(count < Self.capacity)
        words[count >> 2] |= UInt32(byte) << (24 - 8 * UInt32(count & 3))
        count += 1
    }

    @inline(__always)
    mutating func appendBigEndian(_ value: UInt64, bytes n: Int) {
        var i = n - 1
        while i >= 0 {
            append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(i))))
            i -= 1
        }
    }

    /// The digest as five big-endian words.
    func sha1() -> (UInt32, UInt32, UInt32, UInt32, UInt32) {
        var w = InlineArray<80, UInt32>(repeating: 0)
        for i in 0..<16 { w[i] = words[i] }
        w[count >> 2] |= 0x80 << (24 - 8 * UInt32(count & 3))
        w[15] = UInt32(count * 8)
        for i in 16..<80 { w[i] = Self.rotate(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1) }
        let h0: UInt32 = 0x6745_2301, h1: UInt32 = 0xEFCD_AB89, h2: UInt32 = 0x98BA_DCFE, h3: UInt32 = 0x1032_5476, h4: UInt32 = 0xC3D2_E1F0
        var a = h0, b = h1, c = h2, d = h3, e = h4
        for i in 0..<20 { Self.step(&a, &b, &c, &d, &e, (b & c) | (~b & d), 0x5A82_7999, w[i]) }
        for i in 20..<40 { Self.step(&a, &b, &c, &d, &e, b ^ c ^ d, 0x6ED9_EBA1, w[i]) }
        for i in 40..<60 { Self.step(&a, &b, &c, &d, &e, (b & c) | (b & d) | (c & d), 0x8F1B_BCDC, w[i]) }
        for i in 60..<80 { Self.step(&a, &b, &c, &d, &e, b ^ c ^ d, 0xCA62_C1D6, w[i]) }
        return (h0 &+ a, h1 &+ b, h2 &+ c, h3 &+ d, h4 &+ e)
    }

    @inline(__always)
    static func step(_ a: inout UInt32, _ b: inout UInt32, _ c: inout UInt32, _ d: inout UInt32, _ e: inout UInt32,
                     _ f: UInt32, _ k: UInt32, _ w: UInt32) {
        let t = rotate(a, 5) &+ f &+ e &+ k &+ w
        e = d
        d = c
        c = rotate(b, 30)
        b = a
        a = t
    }

    @inline(__always)
    static func rotate(_ x: UInt32, _ n: UInt32) -> UInt32 { x << n | x >> (32 - n) }
}
