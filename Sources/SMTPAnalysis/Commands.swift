/// A client command the machine tracks while it waits for its reply.
enum CommandKind: Equatable {
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

/// A parsed command line: the verb as an enum, the argument as kept bytes.
struct CommandLine {
    var kind: CommandKind
    var verb: String
    var argument: ArraySlice<UInt8>

    init(_ line: [UInt8]) {
        var end = 0
        while end < line.count && line[end] != 0x20 && end < 16 { end += 1 }
        var verbBytes = line[0..<end]
        // ASCII upper case; any byte outside printable ASCII makes it an unknown verb.
        var upper: [UInt8] = []
        upper.reserveCapacity(verbBytes.count)
        var printable = true
        for b in verbBytes {
            if b < 0x21 || b > 0x7e { printable = false }
            upper.append(b >= 0x61 && b <= 0x7a ? b - 0x20 : b)
        }
        if !printable { verbBytes = [] }
        verb = printable ? String(decoding: upper, as: UTF8.self) : ""
        var argStart = end
        while argStart < line.count && line[argStart] == 0x20 { argStart += 1 }
        argument = line[argStart...]
        switch verb {
        case "EHLO": kind = .ehlo
        case "HELO": kind = .helo
        case "STARTTLS": kind = .starttls
        case "AUTH": kind = .auth
        case "MAIL": kind = .mail
        case "RCPT": kind = .rcpt
        case "DATA": kind = .data
        case "BDAT": kind = .bdat(last: false)  // arguments parsed by `parseBDAT`
        case "RSET": kind = .rset
        case "QUIT": kind = .quit
        default: kind = .other
        }
    }

    /// Well-known verbs that appear in transcripts; anything else is shown as unknown.
    static let knownVerbs: Set<String> = [
        "EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "QUIT", "NOOP",
        "VRFY", "EXPN", "HELP", "TURN", "ETRN", "ATRN", "XCLIENT", "XFORWARD", "SEND", "SOML", "SAML", "LHLO",
    ]
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
func parseReplyLine(_ line: [UInt8]) -> (code: Int, more: Bool)? {
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

/// Wire text kept for reports, cut to `limit` bytes; invalid UTF-8 becomes U+FFFD. Reporters
/// escape everything that is not printable.
func wireText(_ bytes: some Collection<UInt8>, limit: Int = 200) -> String {
    String(decoding: bytes.prefix(limit), as: UTF8.self)
}

/// `XXXXXXXA`: only X's (at least three) and at most one trailing letter.
func isMaskedKeyword(_ keyword: String) -> Bool {
    let u = Array(keyword.utf8)
    guard u.count >= 4 else { return false }
    var xs = 0
    while xs < u.count && (u[xs] == 0x58 || u[xs] == 0x78) { xs += 1 }
    guard xs >= 3 else { return false }
    if xs == u.count { return true }
    return xs == u.count - 1 && ((u[xs] | 0x20) >= 0x61 && (u[xs] | 0x20) <= 0x7a)
}

/// A banner masked by a firewall (`220 ***********`, `220 XXXXXXXX`): the text after the
/// code is only asterisks, X's, spaces and digits, with at least four mask characters.
func isMaskedBanner(_ text: String) -> Bool {
    var masks = 0
    for b in text.utf8 {
        switch b {
        case 0x2a, 0x58: masks += 1
        case 0x20, 0x30...0x39, 0x2e: continue
        default: return false
        }
    }
    return masks >= 4
}
