#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// The byte-scanning kernel: the few places where the layers above read raw memory, each
// behind a signature in safe types (`Span<UInt8>`, `String`, `[UInt8]`). Every pointer here
// lives only for the call that made it; every index is checked against the span first.

public enum ByteScan {
    /// The offset of the first `byte` in `bytes[from...]`, found with libc's memchr (the
    /// widest vectors the CPU has), or nil.
    @inlinable @inline(__always)
    public static func firstIndex(of byte: UInt8, in bytes: Span<UInt8>, from: Int) -> Int? {
        guard from >= 0, from < bytes.count else { return nil }
        return bytes.withUnsafeBufferPointer { b -> Int? in
            guard let base = b.baseAddress else { return nil }
            guard let hit = memchr(base + from, Int32(byte), b.count &- from) else { return nil }
            return UnsafeRawPointer(hit) - UnsafeRawPointer(base)
        }
    }

    /// The offset of the first LF in `bytes[start..<end]` that is followed by a dot inside the
    /// same range (a content line that may end DATA). Most content has few dots (attachments
    /// have none): memchr skips from dot to dot. Where dots come thick (four close ones that
    /// start no line), a portable scan takes the rest: 64 bytes per step with one branch, then
    /// 16 bytes per step to place the hit.
    @inlinable
    public static func lineStartingWithDot(in bytes: Span<UInt8>, from start: Int, end: Int) -> Int? {
        precondition(start >= 0 && start <= end && end <= bytes.count)
        return bytes.withUnsafeBufferPointer { b -> Int? in
            guard let p = b.baseAddress else { return nil }
            let base = UnsafeRawPointer(p)
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
            return lineStartingWithDotVector(base, from: i, end: end)
        }
    }

    /// The same search, 16 bytes at a time with portable SIMD (exposed for its tests).
    @inlinable
    public static func lineStartingWithDotVector(in bytes: Span<UInt8>, from start: Int, end: Int) -> Int? {
        precondition(start >= 0 && start <= end && end <= bytes.count)
        return bytes.withUnsafeBufferPointer { b -> Int? in
            guard let p = b.baseAddress else { return nil }
            return lineStartingWithDotVector(UnsafeRawPointer(p), from: start, end: end)
        }
    }

    @inlinable @inline(__always)
    static func lineStartingWithDotVector(_ base: UnsafeRawPointer, from start: Int, end: Int) -> Int? {
        let lf = SIMD16<UInt8>(repeating: 0x0a)
        let dot = SIMD16<UInt8>(repeating: 0x2e)
        var i = start
        @inline(__always) func hits(_ at: Int) -> SIMDMask<SIMD16<UInt8>.MaskStorage> {
            (base.loadUnaligned(fromByteOffset: at, as: SIMD16<UInt8>.self) .== lf)
                .& (base.loadUnaligned(fromByteOffset: at &+ 1, as: SIMD16<UInt8>.self) .== dot)
        }
        // Whether any lane is set, as two 64-bit words (`any` here became a call per step).
        @inline(__always) func anyLane(_ m: SIMDMask<SIMD16<UInt8>.MaskStorage>) -> Bool {
            let words = unsafeBitCast(m, to: SIMD2<UInt64>.self)
            return words[0] | words[1] != 0
        }
        // Wrapping index arithmetic: `i` stays below `end`, and overflow checks cost as much
        // as the compares.
        while end &- i >= 65 {
            if anyLane(hits(i) .| hits(i &+ 16) .| hits(i &+ 32) .| hits(i &+ 48)) { break }
            i &+= 64
        }
        while end &- i >= 17 {
            let here = base.loadUnaligned(fromByteOffset: i, as: SIMD16<UInt8>.self)
            let next = base.loadUnaligned(fromByteOffset: i &+ 1, as: SIMD16<UInt8>.self)
            let found = (here .== lf) .& (next .== dot)
            if anyLane(found) {
                for j in 0..<16 where found[j] { return i + j }
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

    /// The first space-separated word of `bytes` (leading spaces skipped), as
    /// `split(separator: " ").first` would give it, without splitting the rest.
    @inlinable
    public static func firstWord(in bytes: Span<UInt8>) -> Range<Int> {
        bytes.withUnsafeBufferPointer { b in
            var i = 0
            while i < b.count && b[i] == 0x20 { i &+= 1 }
            var j = i
            while j < b.count && b[j] != 0x20 { j &+= 1 }
            return i..<j
        }
    }

    /// Whether `word` is "STARTTLS" in any case: eight letters compared as one 64-bit word,
    /// lower-cased by setting bit 5 (exact for letters: only 'S' and 's' become 's').
    @inlinable @inline(__always)
    public static func isSTARTTLS(_ word: Span<UInt8>) -> Bool {
        guard word.count == 8 else { return false }
        let v = word.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!).loadUnaligned(as: UInt64.self) }
        return v | 0x2020_2020_2020_2020 == UInt64(littleEndian: 0x736c_7474_7261_7473)  // "starttls"
    }
}

extension Array where Element == UInt8 {
    /// Appends the span's bytes (one copy, no per-byte loop).
    @inlinable @inline(__always)
    public mutating func append(span bytes: Span<UInt8>) {
        bytes.withUnsafeBufferPointer { append(contentsOf: $0) }
    }

    /// A new array with the span's bytes.
    @inlinable
    public init(span bytes: Span<UInt8>) {
        self = bytes.withUnsafeBufferPointer { Array($0) }
    }
}

extension String {
    /// Wire text from bytes, cut to `limit` bytes; invalid UTF-8 becomes U+FFFD (the
    /// contiguous fast path of `String(decoding:)`).
    @inlinable
    public init(wireBytes bytes: Span<UInt8>, limit: Int) {
        let n = Swift.min(bytes.count, Swift.max(0, limit))
        self = bytes.withUnsafeBufferPointer { String(decoding: UnsafeBufferPointer(rebasing: $0[0..<n]), as: UTF8.self) }
    }
}

/// Runs `body` over the text's UTF-8 bytes, in place when they are contiguous (native strings
/// and their substrings are): walking `String.UTF8View` by index costs tens of instructions a
/// byte.
@inlinable @inline(__always)
public func withUTF8Span<S: StringProtocol, R>(_ s: S, _ body: (Span<UInt8>) -> R) -> R {
    if let r = s.utf8.withContiguousStorageIfAvailable({ body($0.span) }) { return r }
    let copy = Array(s.utf8)
    return body(copy.span)
}

extension Span where Element == UInt8 {
    /// The big-endian integer at `offset` (network byte order). The caller checks the length
    /// first; a read past the end traps here instead of reading beyond the span.
    @inlinable @inline(__always)
    public func bigEndian<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        precondition(offset >= 0 && offset <= count &- MemoryLayout<T>.size)
        return withUnsafeBufferPointer {
            T(bigEndian: UnsafeRawPointer($0.baseAddress!).loadUnaligned(fromByteOffset: offset, as: T.self))
        }
    }
}
