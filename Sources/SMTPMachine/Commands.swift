/// A client command the machine tracks while it waits for its reply.
enum CommandKind: Equatable, Sendable {
    case ehlo
    case helo
    case starttls
    case auth
    case authResponse
    case mail
    case rcpt
    case data
    /// The end-of-data line: its reply is the message's final reply.
    case dataEnd
    case bdat(last: Bool)
    case bdatInvalid
    case rset
    case quit
    case other
}

struct PendingCommand {
    var kind: CommandKind
    var frame: UInt64
    /// For the end of DATA content and BDAT: the message the reply belongs to.
    var message: Int?
}

/// A parsed command line: the verb as an enum, the argument as kept bytes. No allocation: the
/// verb is packed into an integer (at most 8 printable bytes, upper-cased).
struct ParsedCommand {
    var kind: CommandKind
    /// The verb's bytes upper-cased and packed big-endian; 0 when it is longer than 8 bytes or
    /// holds a byte outside printable ASCII (an unknown verb).
    var verbCode: UInt64
    var argument: ArraySlice<UInt8>

    init(_ line: [UInt8]) {
        var end = 0
        while end < line.count && line[end] != 0x20 && end < 16 { end += 1 }
        var code: UInt64 = 0
        if end <= 8 {
            for i in 0..<end {
                let b = line[i]
                if b < 0x21 || b > 0x7e { code = 0; break }
                code = code << 8 | UInt64(b >= 0x61 && b <= 0x7a ? b - 0x20 : b)
            }
        }
        verbCode = code
        var argStart = end
        while argStart < line.count && line[argStart] == 0x20 { argStart += 1 }
        argument = line[argStart...]
        switch code {
        case Verb.ehlo: kind = .ehlo
        case Verb.helo: kind = .helo
        case Verb.starttls: kind = .starttls
        case Verb.auth: kind = .auth
        case Verb.mail: kind = .mail
        case Verb.rcpt: kind = .rcpt
        case Verb.data: kind = .data
        case Verb.bdat: kind = .bdat(last: false)  // arguments parsed by `parseBDAT`
        case Verb.rset: kind = .rset
        case Verb.quit: kind = .quit
        default: kind = .other
        }
    }

    /// The verb as text (upper case), "" for an unknown-shaped verb.
    var verb: String {
        var bytes: [UInt8] = []
        var c = verbCode
        while c != 0 { bytes.append(UInt8(truncatingIfNeeded: c)); c >>= 8 }
        return String(decoding: bytes.reversed(), as: UTF8.self)
    }

    /// Well-known verbs that appear in transcripts; anything else is shown as unknown.
    var isKnownVerb: Bool { Verb.known.contains(verbCode) }

    /// Packed verb codes.
    enum Verb {
        static func code(_ s: StaticString) -> UInt64 {
            s.withUTF8Buffer { $0.reduce(0) { $0 << 8 | UInt64($1) } }
        }
        static let ehlo = code("EHLO"), helo = code("HELO"), starttls = code("STARTTLS"), auth = code("AUTH")
        static let mail = code("MAIL"), rcpt = code("RCPT"), data = code("DATA"), bdat = code("BDAT")
        static let rset = code("RSET"), quit = code("QUIT")
        /// Most frequent first: a short scan costs less than hashing into a set.
        static let known: [UInt64] = [
            mail, rcpt, data, quit, ehlo, rset, starttls, bdat, auth, helo, code("NOOP"),
            code("VRFY"), code("EXPN"), code("HELP"), code("TURN"), code("ETRN"), code("ATRN"), code("XCLIENT"),
            code("XFORWARD"), code("SEND"), code("SOML"), code("SAML"), code("LHLO"),
        ]
    }
}

/// `BDAT <size> [LAST]` (RFC 3030): the chunk size and whether it is the last; nil when the
/// arguments are invalid (no size, not a number, too large for 63 bits, trailing junk).
func parseBDAT(_ argument: ArraySlice<UInt8>) -> (size: UInt64, last: Bool)? {
    var i = argument.startIndex
    var size: UInt64 = 0
    var digits = 0
    while i < argument.endIndex, argument[i] >= 0x30, argument[i] <= 0x39 {
        let (m, o1) = size.multipliedReportingOverflow(by: 10)
        let (a, o2) = m.addingReportingOverflow(UInt64(argument[i] - 0x30))
        guard !o1, !o2, a <= UInt64(Int64.max) else { return nil }
        size = a
        digits += 1
        i += 1
    }
    guard digits > 0 else { return nil }
    while i < argument.endIndex, argument[i] == 0x20 { i += 1 }
    if i == argument.endIndex { return (size, false) }
    let rest = argument[i...].map { $0 >= 0x61 && $0 <= 0x7a ? $0 - 0x20 : $0 }
    var trimmed = rest[...]
    while trimmed.last == 0x20 { trimmed = trimmed.dropLast() }
    guard trimmed.elementsEqual("LAST".utf8) else { return nil }
    return (size, true)
}

/// One reply being assembled from its lines.
struct ReplyInProgress {
    var code: Int
    var frame: UInt64
    var lines: [String] = []
    var lineCount = 0
    /// A gap hit the reply or its final line never came: its lines are not all known.
    var damaged = false
}

/// The code and continuation flag of a reply line, or nil when it is not one.
func parseReplyLine(_ line: Span<UInt8>) -> (code: Int, more: Bool)? {
    guard line.count >= 3 else { return nil }
    let d0 = line[0], d1 = line[1], d2 = line[2]
    guard (0x32...0x35).contains(d0), (0x30...0x39).contains(d1), (0x30...0x39).contains(d2) else { return nil }
    let code = Int(d0 - 0x30) * 100 + Int(d1 - 0x30) * 10 + Int(d2 - 0x30)
    if line.count == 3 { return (code, false) }
    switch line[3] {
    case 0x2d: return (code, true)
    case 0x20, 0x09: return (code, false)
    default: return nil
    }
}
