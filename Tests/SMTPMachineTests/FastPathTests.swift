import Findings
import Foundation
import SMTPCapCore
import SMTPCapTestSupport
import TLSHandshake
#if canImport(Glibc)
import Glibc
#endif
import Testing
@testable import Reporting
@testable import SMTPMachine

/// The byte-level fast paths of the SMTP machine and the reports against the plain String
/// versions they replace.
@Suite("Fast paths agree with their plain versions")
struct FastPathTests {
    static let keywordLines = [
        "STARTTLS", "starttls", "StartTLS", "STARTTLS ", "  STARTTLS", "STARTTLSX", "STARTTL", "",
        " ", "XXXXXXXA", "xxxxxxxa", "XXXXA", "XXX", "XXXX", "XXXXXXXA extra", "XXXXXXX1", "XXAXXXXX",
        "SIZE 10240000", "AUTH PLAIN LOGIN", "8BITMIME", "PIPELINING", "ÉSTARTTLS", "STARTTLS\u{301}",
        "X\u{0}XXX", "SMTPUTF8 ünïcode", String(repeating: "K", count: 300),
    ]

    @Test func ehloKeywordMatchesTheStringHelpers() {
        for line in Self.keywordLines {
            let facts = ehloKeyword(line)
            let word = line.split(separator: " ", omittingEmptySubsequences: true).first.map(String.init) ?? ""
            #expect(facts.starttls == (word.uppercased() == "STARTTLS" && word.utf8.count == 8), "\(line)")
            // Independent rule: X's (three or more) and at most one trailing letter, 4+ bytes.
            let masked = word.utf8.count >= 4 && word.range(of: "^[Xx]{3,}[A-Za-z]?$", options: .regularExpression) != nil
            #expect(facts.masked == masked, "\(line)")
            #expect(facts.length == line.utf8.count, "\(line)")
            #expect(String(firstWord(line)) == word, "\(line)")
        }
    }

    @Test func rankIsDeclarationOrder() {
        for (i, code) in FindingCode.allCases.enumerated() { #expect(code.rank == i, "\(code)") }
        for (i, verdict) in Verdict.allCases.enumerated() { #expect(verdict.rank == i, "\(verdict)") }
    }

    /// IPv6 text written as bytes equals `description` (RFC 5952) on addresses with zero runs
    /// of every length and place.
    @Test func ipv6BytesEqualDescription() {
        var rng = SeededRandom(seed: 0)
        func next() -> UInt64 { rng.next() }
        for _ in 0..<4000 {
            var groups = (0..<8).map { _ in UInt16(truncatingIfNeeded: next()) }
            // Zero some groups: runs and lone zeros, and small values (leading zeros dropped).
            let mask = next()
            for i in 0..<8 {
                switch (mask >> (UInt64(i) * 3)) & 7 {
                case 0, 1, 2: groups[i] = 0
                case 3: groups[i] &= 0xf
                default: break
                }
            }
            var high: UInt64 = 0, low: UInt64 = 0
            for i in 0..<4 {
                high = high << 16 | UInt64(groups[i])
                low = low << 16 | UInt64(groups[4 + i])
            }
            let address = IPAddress(ipv6High: high, low: low)
            let sink = ByteSink(capacity: 64)
            address.appendIPv6(into: sink)
            #expect(String(decoding: sink.bytes, as: UTF8.self) == address.description)
            // An independent reference: the C library's inet_ntop, except where it writes an
            // embedded IPv4 address in dotted form (::ffff:a.b.c.d and ::a.b.c.d).
            if !(high == 0 && (low >> 48) == 0 && ((low >> 32) & 0xffff == 0xffff || (low >> 32) & 0xffff == 0)) {
                #expect(address.description == Self.inetNtop(high: high, low: low))
            }
        }
        for (h, l) in [(UInt64(0), UInt64(0)), (0, 1), (0x2001_0db8_0000_0000, 0x0000_0000_0000_0001), (.max, .max)] {
            let sink = ByteSink(capacity: 64)
            IPAddress(ipv6High: h, low: l).appendIPv6(into: sink)
            #expect(String(decoding: sink.bytes, as: UTF8.self) == IPAddress(ipv6High: h, low: l).description)
        }
    }

    static func inetNtop(high: UInt64, low: UInt64) -> String {
        var raw = [UInt8](repeating: 0, count: 16)
        for i in 0..<8 {
            raw[i] = UInt8(truncatingIfNeeded: high >> (56 - 8 * UInt64(i)))
            raw[8 + i] = UInt8(truncatingIfNeeded: low >> (56 - 8 * UInt64(i)))
        }
        var text = [CChar](repeating: 0, count: 64)
        _ = raw.withUnsafeBytes { inet_ntop(AF_INET6, $0.baseAddress, &text, socklen_t(text.count)) }
        return String(cString: text)
    }

    /// The JSON escaper's fast and slow paths give pure ASCII that an independent JSON parser
    /// (Foundation's) reads back as the original text.
    @Test func jsonEscapingAgrees() {
        let samples = ["", "plain text", "quote \" and \\ backslash", "tab\tnew\nline\r", "\u{1b}[31mred",
                       "ünïcode", "emoji 😀", "del \u{7f}", String(repeating: "a", count: 100) + "\u{0}",
                       String(repeating: "b", count: 47) + "\"" + String(repeating: "c", count: 30)]
        for s in samples {
            let sink = ByteSink(capacity: 8)
            Escape.json(s, into: sink)
            let text = Data(sink.bytes)
            #expect((try? JSONSerialization.jsonObject(with: text, options: .fragmentsAllowed)) as? String == s, "\(s)")
            #expect(sink.bytes.allSatisfy { $0 >= 0x20 && $0 < 0x7f })
        }
    }

    @Test func hexCodesMatchTheRadixFormatter() {
        for v: UInt16 in [0, 1, 0x0a, 0xab, 0x1302, 0xc02f, 0xfffe, 0xffff] + (0..<200).map({ UInt16(truncatingIfNeeded: $0 &* 331) }) {
            let plain = String(v, radix: 16)
            #expect(TLSNames.hex(v) == "0x" + String(repeating: "0", count: 4 - plain.count) + plain)
        }
    }

    @Test func knownVerbsAreRecognized() {
        for verb in ["MAIL", "RCPT", "DATA", "QUIT", "EHLO", "RSET", "STARTTLS", "BDAT", "AUTH", "HELO", "NOOP",
                     "VRFY", "EXPN", "HELP", "TURN", "ETRN", "ATRN", "XCLIENT", "XFORWARD", "SEND", "SOML", "SAML", "LHLO"] {
            #expect(ParsedCommand(Array("\(verb.lowercased()) x".utf8)).isKnownVerb, "\(verb)")
        }
        for verb in ["MAILX", "XYZZY", "DAT", "STARTTL", "GET"] {
            #expect(!ParsedCommand(Array("\(verb) /".utf8)).isKnownVerb, "\(verb)")
        }
    }
}
