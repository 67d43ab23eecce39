/// An IPv4 or IPv6 address held inline (no heap): IPv4 lives in the low 32 bits of `low`.
public struct IPAddress: Hashable, Sendable, Comparable {
    public var high: UInt64
    public var low: UInt64
    public var isIPv6: Bool

    @inlinable
    public init(ipv4 value: UInt32) {
        high = 0
        low = UInt64(value)
        isIPv6 = false
    }

    @inlinable
    public init(ipv6High high: UInt64, low: UInt64) {
        self.high = high
        self.low = low
        isIPv6 = true
    }

    public var version: Int { isIPv6 ? 6 : 4 }

    public static func < (a: IPAddress, b: IPAddress) -> Bool {
        if a.isIPv6 != b.isIPv6 { return !a.isIPv6 }
        if a.high != b.high { return a.high < b.high }
        return a.low < b.low
    }

    /// Dotted quad for IPv4; RFC 5952 text (lower case, longest zero run compressed) for IPv6.
    public var description: String {
        if !isIPv6 {
            let v = UInt32(truncatingIfNeeded: low)
            return "\(v >> 24).\((v >> 16) & 0xff).\((v >> 8) & 0xff).\(v & 0xff)"
        }
        let (zeroStart, zeroLength) = ipv6ZeroRun
        var out = ""
        var k = 0
        while k < 8 {
            if k == zeroStart {
                out += "::"
                k += zeroLength
                continue
            }
            if k > 0 && k != zeroStart + zeroLength { out += ":" }
            out += String(ipv6Group(k), radix: 16)
            k += 1
        }
        return out
    }

    /// Group `i` (0...7) of an IPv6 address, most significant first.
    @inlinable
    public func ipv6Group(_ i: Int) -> UInt16 {
        UInt16(truncatingIfNeeded: (i < 4 ? high : low) >> (48 - 16 * UInt64(i & 3)))
    }

    /// The first longest run of two or more zero groups, which RFC 5952 writes as `::`
    /// (start -1 when there is none).
    public var ipv6ZeroRun: (start: Int, length: Int) {
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if ipv6Group(i) == 0 {
                var j = i
                while j < 8 && ipv6Group(j) == 0 { j += 1 }
                if j - i > bestLength && j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        return (bestStart, bestLength)
    }
}

/// An address and a TCP port.
public struct Endpoint: Hashable, Sendable, Comparable {
    public var address: IPAddress
    public var port: UInt16

    @inlinable
    public init(address: IPAddress, port: UInt16) {
        self.address = address
        self.port = port
    }

    public static func < (a: Endpoint, b: Endpoint) -> Bool {
        if a.address != b.address { return a.address < b.address }
        return a.port < b.port
    }

    /// `198.51.100.2:25`, or `[2001:db8::1]:25` for IPv6.
    public var description: String {
        address.isIPv6 ? "[\(address.description)]:\(port)" : "\(address.description):\(port)"
    }
}
