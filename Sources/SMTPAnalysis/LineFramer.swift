#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

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
    mutating func consume(_ data: UnsafeRawBufferPointer, from p: inout Int) -> Bool {
        let count = data.count - p
        guard count > 0, let base = data.baseAddress else { return false }
        let start = base + p
        let found = memchr(start, 0x0a, count)
        let take = found.map { UnsafeRawPointer($0) - start } ?? count
        if !skipping {
            let room = Self.keep - line.count
            if room > 0 {
                if line.capacity == 0 { line.reserveCapacity(128) }
                line.append(contentsOf: UnsafeRawBufferPointer(start: start, count: min(room, take)))
            }
            length += take
            if take > 0 { lastWasCR = start.load(fromByteOffset: take - 1, as: UInt8.self) == 0x0d }
        }
        if found == nil {
            p = data.count
            return false
        }
        p += take + 1
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
    /// not copied into `line`. The same bytes and wire length `consume` would give (kept bytes
    /// capped at `keep`, CR of CR LF dropped); `p` then points past the LF. Nil when the line
    /// does not end inside `data`: `consume` takes it from there.
    @inline(__always)
    mutating func wholeLine(_ data: UnsafeRawBufferPointer, from p: inout Int) -> (line: UnsafeRawBufferPointer, length: Int)? {
        guard length == 0, !skipping, p < data.count, let base = data.baseAddress else { return nil }
        let start = base + p
        guard let found = memchr(start, 0x0a, data.count &- p) else { return nil }
        let take = UnsafeRawPointer(found) - start
        let cr = take > 0 && start.load(fromByteOffset: take &- 1, as: UInt8.self) == 0x0d
        var kept = min(take, Self.keep)
        if cr && kept == take { kept &-= 1 }
        p &+= take &+ 1
        return (UnsafeRawBufferPointer(start: start, count: kept), cr ? take &- 1 : take)
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

    /// Scans from `p`; returns true when the end-of-data line was consumed (`p` after it).
    mutating func scan(_ data: UnsafeRawBufferPointer, from p: inout Int) -> Bool {
        guard let base = data.baseAddress else { return false }
        let end = data.count
        var i = p
        var counted = 0  // bytes of this chunk that are content
        defer { p = i }
        while i < end {
            switch state {
            case .middle:
                // Only a line that starts with a dot can end the content: skip to the next
                // LF followed by a dot. Every byte before it is content.
                if let lf = Self.findLineStartingWithDot(base, from: i, end: end) {
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

    /// The offset of the first LF in `start..<end` that is followed by a dot inside the same
    /// range. Most content has few dots (attachments have none): libc's memchr, which uses the
    /// widest vectors the CPU has, skips from dot to dot. Where dots come thick (four close
    /// ones that start no line), a portable scan takes the rest: 64 bytes per step with one
    /// branch, then 16 bytes per step to place the hit.
    @inline(__always)
    static func findLineStartingWithDot(_ base: UnsafeRawPointer, from start: Int, end: Int) -> Int? {
        var i = start
        var closeMisses = 0
        while end &- i >= 2 {
            // A dot at `i` cannot start a line inside the range: look from `i + 1`.
            guard let hit = memchr(base + (i &+ 1), 0x2e, end &- i &- 1) else { return nil }
            let d = UnsafeRawPointer(hit) - base
            if base.load(fromByteOffset: d &- 1, as: UInt8.self) == 0x0a { return d &- 1 }
            if d &- i < 256 {
                closeMisses &+= 1
                if closeMisses == 4 { i = d; break }
            }
            i = d
        }
        return findLineStartingWithDotVector(base, from: i, end: end)
    }

    /// The same search, 16 bytes at a time with portable SIMD.
    @inline(__always)
    static func findLineStartingWithDotVector(_ base: UnsafeRawPointer, from start: Int, end: Int) -> Int? {
        let lf = SIMD16<UInt8>(repeating: 0x0a)
        let dot = SIMD16<UInt8>(repeating: 0x2e)
        var i = start
        @inline(__always) func hits(_ at: Int) -> SIMDMask<SIMD16<UInt8>.MaskStorage> {
            (base.loadUnaligned(fromByteOffset: at, as: SIMD16<UInt8>.self) .== lf)
                .& (base.loadUnaligned(fromByteOffset: at &+ 1, as: SIMD16<UInt8>.self) .== dot)
        }
        // Wrapping index arithmetic: `i` stays below `end`, and overflow checks cost as much
        // as the compares.
        while end &- i >= 65 {
            if any(hits(i) .| hits(i &+ 16) .| hits(i &+ 32) .| hits(i &+ 48)) { break }
            i &+= 64
        }
        while end &- i >= 17 {
            let here = base.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)
            let next = base.loadUnaligned(fromByteOffset: i &+ 1, as: SIMD16<UInt8>.self)
            let hits = (here .== lf) .& (next .== dot)
            if any(hits) {
                for j in 0..<16 where hits[j] { return i + j }
            }
            i &+= 16
        }
        while end - i >= 2 {
            if base.load(fromByteOffset: i, as: UInt8.self) == 0x0a && base.load(fromByteOffset: i + 1, as: UInt8.self) == 0x2e {
                return i
            }
            i += 1
        }
        return nil
    }
}
