import SMTPCapCore

/// Wire text kept for reports, cut to `limit` bytes; invalid UTF-8 becomes U+FFFD. Reporters
/// escape everything that is not printable.
func wireText(_ bytes: some Collection<UInt8>, limit: Int = 200) -> String {
    String(decoding: bytes.prefix(limit), as: UTF8.self)
}

/// The first space-separated word of `bytes` (leading spaces skipped).
@inlinable
public func firstWordRange(_ bytes: Span<UInt8>) -> Range<Int> {
    ByteScan.firstWord(in: bytes)
}

/// The first space-separated word of `s`.
public func firstWord(_ s: String) -> Substring {
    let range = withUTF8Span(s) { firstWordRange($0) }
    // Both ends sit at a space or an end of the text: scalar boundaries.
    let u = s.utf8
    let from = u.index(u.startIndex, offsetBy: range.lowerBound)
    return s[from..<u.index(from, offsetBy: range.count)]
}

/// An EHLO reply line's keyword (its first word), read in one pass over the bytes: whether it
/// is STARTTLS (any case) or a masked keyword (`XXXXXXXA`), and the line's length in bytes.
func ehloKeyword(_ text: String) -> (starttls: Bool, masked: Bool, length: Int) {
    withUTF8Span(text) { b in
        let word = b.extracting(firstWordRange(b))
        return (ByteScan.isSTARTTLS(word), isMaskedKeyword(word), b.count)
    }
}

/// `XXXXXXXA`: only X's (at least three) and at most one trailing letter.
func isMaskedKeyword(_ keyword: some StringProtocol) -> Bool {
    withUTF8Span(keyword) { isMaskedKeyword($0) }
}

/// `XXXXXXXA` on bytes.
func isMaskedKeyword(_ u: Span<UInt8>) -> Bool {
    let count = u.count
    guard count >= 4 else { return false }
    var xs = 0
    while xs < count && (u[xs] == 0x58 || u[xs] == 0x78) { xs += 1 }
    guard xs >= 3 else { return false }
    if xs == count { return true }
    let last = u[count - 1] | 0x20
    return xs == count - 1 && last >= 0x61 && last <= 0x7a
}

/// At most `limit` bytes of `text` (a cut inside a character becomes U+FFFD).
func prefixBytes(_ text: String, _ limit: Int) -> String {
    text.utf8.count <= limit ? text : wireText(text.utf8, limit: limit)
}

/// A banner masked by a firewall (`220 ***********`, `220 XXXXXXXX`): the text after the
/// code is only asterisks, X's, spaces and digits, with at least four mask characters.
public func isMaskedBanner(_ text: String) -> Bool {
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

/// `text` with what may be an address withheld (`--no-addresses`): every `<...>` and every
/// word with an `@` becomes `<address withheld>` (replies that echo a sender or recipient,
/// VRFY and EXPN arguments).
func withholdingAddresses(_ text: String) -> String {
    guard text.utf8.contains(where: { $0 == 0x40 || $0 == 0x3c }) else { return text }
    var out: [UInt8] = []
    let bytes = Array(text.utf8)
    var i = 0
    let withheld = Array("<address withheld>".utf8)
    while i < bytes.count {
        if bytes[i] == 0x3c {
            var j = i + 1
            while j < bytes.count && bytes[j] != 0x3e { j += 1 }
            out += withheld
            i = min(bytes.count, j + 1)
            continue
        }
        if bytes[i] == 0x20 {
            out.append(0x20)
            i += 1
            continue
        }
        var j = i
        while j < bytes.count && bytes[j] != 0x20 && bytes[j] != 0x3c { j += 1 }
        if bytes[i..<j].contains(0x40) { out += withheld } else { out += bytes[i..<j] }
        i = j
    }
    return String(decoding: out, as: UTF8.self)
}
