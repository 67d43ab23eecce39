import SMTPCapCore

extension IPAddress {
    /// RFC 5952 text, as `description` gives it, without building strings.
    func appendIPv6(into out: ByteSink) {
        let (zeroStart, zeroLength) = ipv6ZeroRun
        var k = 0
        while k < 8 {
            if k == zeroStart {
                out.append(0x3a, 0x3a)
                k += zeroLength
                continue
            }
            if k > 0 && k != zeroStart + zeroLength { out.append(0x3a) }
            let v = ipv6Group(k)
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let d = UInt8((v >> UInt16(shift)) & 0xf)
                if d != 0 || started || shift == 0 {
                    out.append(Escape.hexByte(d))
                    started = true
                }
            }
            k += 1
        }
    }
}

extension Endpoint {
    /// `198.51.100.2:25`, or `[2001:db8::1]:25`, as bytes.
    func append(into out: ByteSink) {
        if address.isIPv6 {
            out.append(0x5b)
            address.appendIPv6(into: out)
            out.append(0x5d)
        } else {
            let v = UInt32(truncatingIfNeeded: address.low)
            out.appendDecimal(Int64(v >> 24))
            out.append(0x2e)
            out.appendDecimal(Int64((v >> 16) & 0xff))
            out.append(0x2e)
            out.appendDecimal(Int64((v >> 8) & 0xff))
            out.append(0x2e)
            out.appendDecimal(Int64(v & 0xff))
        }
        out.append(0x3a)
        out.appendDecimal(Int64(port))
    }
}
