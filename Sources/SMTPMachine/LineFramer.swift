import SMTPCapCore

/// Splits one direction's bytes into lines ending in LF (CRLF or bare LF), across any chunk
/// boundaries. Keeps at most `keep` bytes of a line and counts the rest, so a megabyte line
/// costs no memory; finds line ends with memchr and never rescans.
struct LineFramer {
    static let keep = 2048

    /// The current line's kept bytes (without CR LF once complete).
    private(set) var line: [UInt8] = []
    /// Length of the current line on the wire, including bytes past `keep`.
    private(set) var length = 0
    /// Discarding up to the next LF (after a gap, or a mid-stream start).
    var skipping = false
    private var lastWasCR = false

    /// The buffer is allocated at the first line that needs it (with room for a typical
    /// command): most reply lines are lent in place (`wholeLine`) and never need it.
    init() {}

    var hasPartialLine: Bool { length > 0 }

    /// Heap bytes held for the line.
    var capacity: Int { line.capacity }

    /// Consumes bytes from `p` up to and including the next LF. Returns true when a line is
    /// complete in `line`; `p` then points past the LF.
    mutating func consume(_ data: Span<UInt8>, from p: inout Int) -> Bool {
        guard p < data.count else { return false }
        let found = ByteScan.firstIndex(of: 0x0a, in: data, from: p)
        let take = (found ?? data.count) - p
        if !skipping {
            let room = Self.keep - line.count
            if room > 0 {
                if line.capacity == 0 { line.reserveCapacity(128) }
                line.append(span: data.extracting(p..<(p + min(room, take))))
            }
            length += take
            if take > 0 { lastWasCR = data[p + take - 1] == 0x0d }
        }
        guard let found else {
            p = data.count
            return false
        }
        p = found + 1
        if skipping {
            skipping = false
            return false
        }
        if lastWasCR {
            // The CR of CR LF is not part of the line.
            if line.count == length { line.removeLast() }
            length -= 1
        }
        lastWasCR = false
        return true
    }

    /// A whole line of `data` from `p` when no partial line is pending: lent where it lies,
    /// not copied into `line`. The range of the same bytes and the wire length `consume`
    /// would give (kept bytes capped at `keep`, CR of CR LF dropped); `p` then points past the
    /// LF. Nil when the line does not end inside `data`: `consume` takes it from there.
    @inline(__always)
    mutating func wholeLine(_ data: Span<UInt8>, from p: inout Int) -> (kept: Range<Int>, length: Int)? {
        guard length == 0, !skipping, let found = ByteScan.firstIndex(of: 0x0a, in: data, from: p) else { return nil }
        let start = p
        let take = found - start
        let cr = take > 0 && data[found - 1] == 0x0d
        var kept = min(take, Self.keep)
        if cr && kept == take { kept -= 1 }
        p = found + 1
        return (start..<(start + kept), cr ? take - 1 : take)
    }

    /// Moves the complete line out (no copy) and readies the framer for the next one. Hand
    /// the buffer back with `giveBack` so its capacity is reused.
    mutating func takeLine() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &line)
        length = 0
        lastWasCR = false
        return taken
    }

    /// Returns a buffer from `takeLine`, unless a line was started meanwhile (a replay fed
    /// the framer while the taken line was being handled).
    mutating func giveBack(_ buffer: inout [UInt8]) {
        guard line.isEmpty && length == 0 && line.capacity < buffer.capacity else { return }
        buffer.removeAll(keepingCapacity: true)
        swap(&buffer, &line)
    }

    mutating func reset() {
        line.removeAll(keepingCapacity: true)
        length = 0
        lastWasCR = false
    }

    /// Drops the partial line and skips to the next line end.
    mutating func resync() {
        reset()
        skipping = true
    }
}

/// Finds the end of DATA content (`CRLF.CRLF`, or `LF.LF` from bare-LF clients) across chunk
/// boundaries, counting bytes without keeping them.
struct BodyScanner {
    enum State {
        case lineStart
        case middle
        case dot
        case dotCR
    }

    var state = State.lineStart
    /// Content bytes so far, the terminating `.CRLF` excluded.
    var bytes: UInt64 = 0

    /// Bytes lost to a gap: counted as content, and the scan resumes inside a line.
    mutating func skip(_ lost: UInt64) {
        bytes &+= lost
        state = .middle
    }

    /// Scans from `p`; returns true when the end-of-data line was consumed (`p` after it).
    mutating func scan(_ data: Span<UInt8>, from p: inout Int) -> Bool {
        let end = data.count
        var i = p
        var counted = 0  // bytes of this chunk that are content
        defer { p = i }
        while i < end {
            switch state {
            case .middle:
                // Only a line that starts with a dot can end the content: skip to the next
                // LF followed by a dot. Every byte before it is content.
                if let lf = ByteScan.lineStartingWithDot(in: data, from: i, end: end) {
                    counted += lf + 1 - i
                    i = lf + 1
                    state = .lineStart
                } else {
                    counted += end - i
                    if data[end - 1] == 0x0a { state = .lineStart }
                    i = end
                }
            case .lineStart:
                let byte = data[i]
                i += 1
                if byte == 0x2e { state = .dot } else {
                    counted += 1
                    state = byte == 0x0a ? .lineStart : .middle
                }
            case .dot:
                let byte = data[i]
                i += 1
                if byte == 0x0a {  // bare-LF terminator
                    bytes &+= UInt64(counted)
                    state = .lineStart
                    return true
                }
                if byte == 0x0d { state = .dotCR } else {
                    counted += 2  // a dot-stuffed line: the dot and this byte are content
                    state = .middle
                }
            case .dotCR:
                let byte = data[i]
                i += 1
                if byte == 0x0a {
                    bytes &+= UInt64(counted)
                    state = .lineStart
                    return true
                }
                counted += 3
                state = byte == 0x0a ? .lineStart : .middle
            }
        }
        bytes &+= UInt64(counted)
        return false
    }
}
