/// Escaping of wire text. Everything that came off the wire goes through one of these before
/// it is printed: no terminal control sequence, invalid UTF-8 or line break survives.
public enum Escape {
    /// For text output: printable ASCII as is, a backslash doubled, every other byte as `\xNN`.
    public static func terminal(_ s: String, into out: ByteSink) {
        var s = s
        s.withUTF8 { terminal(bytes: $0, into: out) }
    }

    /// The same, from bytes.
    public static func terminal(span: Span<UInt8>, into out: ByteSink) {
        span.withUnsafeBufferPointer { terminal(bytes: $0, into: out) }
    }

    static func terminal(bytes utf8: UnsafeBufferPointer<UInt8>, into out: ByteSink) {
        do {
            if isPlain(utf8, quote: false) { out.append(utf8); return }
            for b in utf8 {
                switch b {
                case 0x5c: out.append(0x5c, 0x5c)
                case 0x20...0x7e: out.append(b)
                default:
                    out.append(0x5c, 0x78)
                    out.append(hexByte(b >> 4), hexByte(b & 0xf))
                }
            }
        }
    }

    /// Whether every byte is printable ASCII other than a backslash (and a double quote, with
    /// `quote`): such text goes out as is. Eight bytes per step in a 64-bit word (portable SIMD
    /// types compare element by element here).
    @inline(__always)
    static func isPlain(_ bytes: UnsafeBufferPointer<UInt8>, quote: Bool) -> Bool {
        guard let base = bytes.baseAddress else { return true }
        let n = bytes.count
        let ones: UInt64 = 0x0101_0101_0101_0101, highs: UInt64 = 0x8080_8080_8080_8080
        let backslashes = ones &* 0x5c, quotes = ones &* (quote ? 0x22 : 0x5c)
        @inline(__always) func hasZeroByte(_ y: UInt64) -> Bool { (y &- ones) & ~y & highs != 0 }
        // A byte below 0x20; a byte of 0x7f or above (a carry comes only from a 0xff byte,
        // itself flagged); a backslash; a quote.
        @inline(__always) func bad(_ x: UInt64) -> Bool {
            (x &- ones &* 0x20) & ~x & highs != 0 || ((x &+ ones) | x) & highs != 0
                || hasZeroByte(x ^ backslashes) || hasZeroByte(x ^ quotes)
        }
        var i = 0
        while n - i >= 8 {
            if bad(UnsafeRawPointer(base + i).loadUnaligned(as: UInt64.self)) { return false }
            i += 8
        }
        // The last few bytes as one word ending at the end (overlapping bytes already passed).
        if i < n && n >= 8 {
            return !bad(UnsafeRawPointer(base + (n - 8)).loadUnaligned(as: UInt64.self))
        }
        let q: UInt8 = quote ? 0x22 : 0x5c
        while i < n {
            let b = base[i]
            if b < 0x20 || b > 0x7e || b == 0x5c || b == q { return false }
            i += 1
        }
        return true
    }

    static func hexByte(_ v: UInt8) -> UInt8 { v < 10 ? 0x30 + v : 0x57 + v }

    /// A JSON string literal, quotes included, in pure ASCII: every non-ASCII scalar and every
    /// control character is a `\u` escape.
    public static func json(_ s: String, into out: ByteSink) {
        var s = s
        let plain = s.withUTF8 { utf8 -> Bool in
            guard isPlain(utf8, quote: true) else { return false }
            out.append(0x22)
            out.append(utf8)
            out.append(0x22)
            return true
        }
        if plain { return }
        out.append(0x22)
        for scalar in s.unicodeScalars {
            switch scalar.value {
            case 0x22: out.append(0x5c, 0x22)
            case 0x5c: out.append(0x5c, 0x5c)
            case 0x0a: out.append(0x5c, 0x6e)
            case 0x0d: out.append(0x5c, 0x72)
            case 0x09: out.append(0x5c, 0x74)
            case 0x20...0x7e: out.append(UInt8(scalar.value))
            case 0x10000...:
                let v = scalar.value - 0x10000
                appendU(UInt16(0xd800 + (v >> 10)), into: out)
                appendU(UInt16(0xdc00 + (v & 0x3ff)), into: out)
            default:
                appendU(UInt16(scalar.value), into: out)
            }
        }
        out.append(0x22)
    }

    /// The same, from bytes (invalid UTF-8 becomes U+FFFD, as wire text kept as strings does).
    public static func json(span: Span<UInt8>, into out: ByteSink) {
        let plain = span.withUnsafeBufferPointer { utf8 -> Bool in
            guard isPlain(utf8, quote: true) else { return false }
            out.append(0x22)
            out.append(utf8)
            out.append(0x22)
            return true
        }
        if !plain { json(span.withUnsafeBufferPointer { String(decoding: $0, as: UTF8.self) }, into: out) }
    }

    static func appendU(_ v: UInt16, into out: ByteSink) {
        out.append(0x5c, 0x75)
        for shift in stride(from: 12, through: 0, by: -4) {
            out.append(hexByte(UInt8((v >> UInt16(shift)) & 0xf)))
        }
    }

}
