import TCPReassembly

extension Timestamp {
    /// `2026-11-29T03:12:01.123456Z` (UTC, microseconds).
    public var iso8601: String {
        var bytes: [UInt8] = []
        appendISO8601(into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The same, appended as ASCII bytes.
    public func appendISO8601(into out: inout [UInt8]) {
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = seconds - days * 86_400
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        var year = yoe + era * 400
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        if month <= 2 { year += 1 }
        let micro = Int64(max(0, min(999_999_999, nanoseconds))) / 1000
        Self.pad(year, 4, into: &out)
        out.append(0x2d)
        Self.pad(month, 2, into: &out)
        out.append(0x2d)
        Self.pad(day, 2, into: &out)
        out.append(0x54)
        Self.pad(secondOfDay / 3600, 2, into: &out)
        out.append(0x3a)
        Self.pad(secondOfDay / 60 % 60, 2, into: &out)
        out.append(0x3a)
        Self.pad(secondOfDay % 60, 2, into: &out)
        out.append(0x2e)
        Self.pad(micro, 6, into: &out)
        out.append(0x5a)
    }

    /// Decimal digits, zero-padded to `width`; a negative year gets its sign first.
    private static func pad(_ v: Int64, _ width: Int, into out: inout [UInt8]) {
        if v < 0 { out.append(0x2d) }
        var m = v.magnitude
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &digits) { d in
            repeat {
                d[n] = UInt8(m % 10) + 0x30
                m /= 10
                n += 1
            } while m > 0
            for _ in n..<max(n, width) { out.append(0x30) }
            for i in stride(from: n - 1, through: 0, by: -1) { out.append(d[i]) }
        }
    }
}
