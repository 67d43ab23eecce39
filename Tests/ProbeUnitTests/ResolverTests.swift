import Findings
import Probe
import SMTPCapCore
import Testing

/// `probe`'s own parsing: DNS answers, literal addresses, and its verdict line.
@Suite("Probe resolver and verdict")
struct ProbeResolverTests {
    static func name(_ n: String) -> [UInt8] {
        n.split(separator: ".").flatMap { [UInt8($0.utf8.count)] + Array($0.utf8) } + [0]
    }
    static func header(_ answers: Int) -> [UInt8] { [0x12, 0x34, 0x81, 0x80, 0, 1, 0, UInt8(answers), 0, 0, 0, 0] }
    static let question = name("example.org") + [0, 15, 0, 1]
    static func mx(_ preference: Int, _ target: [UInt8]) -> [UInt8] {
        let rdata = [UInt8(preference >> 8), UInt8(preference & 0xff)] + target
        return [0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 1, 0x2c, 0, UInt8(rdata.count)] + rdata
    }

    @Test func mxRecordsWithCompressedNames() throws {
        let message = Self.header(2) + Self.question + Self.mx(20, [7] + Array("refused".utf8) + [0xc0, 0x0c])
            + Self.mx(10, Self.name("mx.example.org"))
        let records = try #require(DNSMessage.mxRecords(message))
        #expect(records.map(\.preference) == [20, 10])
        #expect(records.map(\.host) == ["refused.example.org", "mx.example.org"])
    }

    @Test func aPointerLoopAndACutMessageAreRefused() {
        // The answer's exchange points at itself.
        var looping = Self.header(1) + Self.question
        let at = looping.count + 12 + 2
        looping += [0xc0, 0x0c, 0, 15, 0, 1, 0, 0, 1, 0x2c, 0, 4, 0, 10, 0xc0 | UInt8(at >> 8), UInt8(at & 0xff)]
        #expect(DNSMessage.mxRecords(looping) == nil)
        let whole = Self.header(1) + Self.question + Self.mx(10, Self.name("mx.example.org"))
        for cut in 0..<whole.count {
            // Every prefix is refused or read without a trap; none invents a record.
            if let records = DNSMessage.mxRecords(Array(whole.prefix(cut))) { #expect(records.isEmpty) }
        }
    }

    @Test func aNullMXHasAnEmptyExchange() throws {
        let records = try #require(DNSMessage.mxRecords(Self.header(1) + Self.question + Self.mx(0, [0])))
        #expect(records.count == 1 && records[0].host.isEmpty)
    }

    @Test func literalAddressesNeedNoLookup() {
        let (v4, none4) = ProbeResolver.resolve(["203.0.113.25"], families: [4, 6])
        #expect(v4.map(\.address) == ["203.0.113.25"] && v4.first?.family == 4 && none4.isEmpty)
        let (v6, _) = ProbeResolver.resolve(["[2001:db8:2::25]"], families: [4, 6])
        #expect(v6.map(\.address) == ["2001:db8:2::25"] && v6.first?.family == 6)
        let (excluded, problems) = ProbeResolver.resolve(["2001:db8:2::25"], families: [4])
        #expect(excluded.isEmpty && problems.count == 1)
    }

    func row(_ family: Int, offered: Bool?, masked: String? = nil, tls: String? = nil, error: String? = nil) -> ProbeRow {
        var r = ProbeRow(target: "example.org", mx: "mx.example.org", preference: 10,
                         address: family == 6 ? "2001:db8:2::25" : "203.0.113.25", family: family, fromWire: true)
        r.starttlsOffered = offered
        r.masked = masked
        r.tlsVersion = tls
        r.error = error
        return r
    }

    @Test func theVerdictNamesThePathThatLostSTARTTLS() {
        #expect(ProbeVerdict.line([row(4, offered: false, masked: "XXXXXXXA"), row(6, offered: true, tls: "TLS1.3")], problems: 0)
                == "STARTTLS removed on the IPv4 path to mx.example.org (masked as XXXXXXXA); intact over IPv6")
        #expect(ProbeVerdict.line([row(4, offered: true, tls: "TLS1.3"), row(6, offered: true, tls: "TLS1.3")], problems: 0)
                == "STARTTLS offered and TLS agreed on every path to mx.example.org (IPv4 and IPv6, TLS1.3)")
        #expect(ProbeVerdict.line([row(4, offered: false), row(6, offered: false)], problems: 0)
                == "mx.example.org offers no STARTTLS over IPv4 and IPv6")
        #expect(ProbeVerdict.line([row(4, offered: nil, error: "connection refused")], problems: 1)
                == "mx.example.org: not reached (connection refused); 1 target(s) or host(s) could not be resolved")
        #expect(ProbeVerdict.line([row(4, offered: true, error: "TLS handshake failed")], problems: 0)
                == "STARTTLS offered by mx.example.org but TLS failed over IPv4")
    }
}
