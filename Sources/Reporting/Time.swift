import SMTPCapCore

extension Timestamp {
    /// `2026-11-29T03:12:01.123456Z` (UTC, microseconds).
    public var iso8601: String {
        let sink = ByteSink(capacity: 32)
        appendISO8601(into: sink)
        return withExtendedLifetime(sink) { String(decoding: sink.bytes, as: UTF8.self) }
    }

    /// The same, appended as ASCII bytes.
    public func appendISO8601(into out: ByteSink) {
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
        let micro = Int(max(0, min(999_999_999, nanoseconds))) / 1000
        if year < 0 || year > 9999 {
            out.appendPadded(year, width: 4)
        } else {
            out.appendFixedDigits(Int(year), count: 4)
        }
        out.append(0x2d)
        out.appendFixedDigits(Int(month), count: 2)
        out.append(0x2d)
        out.appendFixedDigits(Int(day), count: 2)
        out.append(0x54)
        out.appendFixedDigits(Int(secondOfDay / 3600), count: 2)
        out.append(0x3a)
        out.appendFixedDigits(Int(secondOfDay / 60 % 60), count: 2)
        out.append(0x3a)
        out.appendFixedDigits(Int(secondOfDay % 60), count: 2)
        out.append(0x2e)
        out.appendFixedDigits(micro, count: 6)
        out.append(0x5a)
    }
}
