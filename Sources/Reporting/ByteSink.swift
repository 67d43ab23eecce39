#if canImport(Glibc)
import Glibc
#endif

/// An append-only byte buffer for report text. A class that is never shared, so a write is a
/// capacity check and a store: no copy-on-write check, no retain, no bounds trap to keep.
/// The reports write straight into the output's sink, with no string or array per session.
/// Never shared between threads, so its three fields are `@exclusivity(unchecked)`: they are
/// touched on every byte written, where a class's stored property would otherwise cost a
/// dynamic exclusivity check per access.
public final class ByteSink {
    @exclusivity(unchecked) @usableFromInline var base: UnsafeMutablePointer<UInt8>
    @exclusivity(unchecked) @usableFromInline var capacity: Int
    @exclusivity(unchecked) public private(set) var count = 0

    public init(capacity: Int = 1 << 16) {
        self.capacity = max(64, capacity)
        base = .allocate(capacity: self.capacity)
    }

    deinit { base.deallocate() }

    /// The bytes written so far, valid until the next write or `removeAll`.
    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }

    public func removeAll() { count = 0 }

    /// Drops the last `n` bytes.
    public func removeLast(_ n: Int) {
        precondition(n >= 0)
        count -= min(n, count)
    }

    /// The byte at `offset`, to rewrite one just written.
    public subscript(offset: Int) -> UInt8 {
        get { precondition(offset >= 0 && offset < count); return base[offset] }
        set { precondition(offset >= 0 && offset < count); base[offset] = newValue }
    }

    @inline(never)
    func grow(_ extra: Int) {
        var size = capacity * 2
        while size < count + extra { size *= 2 }
        let bigger = UnsafeMutablePointer<UInt8>.allocate(capacity: size)
        bigger.update(from: base, count: count)
        base.deallocate()
        base = bigger
        capacity = size
    }

    @inline(__always)
    public func append(_ byte: UInt8) {
        if count == capacity { grow(1) }
        base[count] = byte
        count &+= 1
    }

    @inline(__always)
    public func append(_ b0: UInt8, _ b1: UInt8) {
        if capacity - count < 2 { grow(2) }
        base[count] = b0
        base[count &+ 1] = b1
        count &+= 2
    }

    /// Room for `n` more bytes, for the unchecked writes below.
    @inline(__always)
    public func reserve(_ n: Int) {
        if capacity - count < n { grow(n) }
    }

    /// A byte, within room made by `reserve`.
    @inline(__always)
    public func appendUnchecked(_ byte: UInt8) {
        base[count] = byte
        count &+= 1
    }

    /// Bytes, within room made by `reserve`.
    @inline(__always)
    public func appendUnchecked(_ from: UnsafeRawPointer, count n: Int) {
        let to = UnsafeMutableRawPointer(base + count)
        // Keys and most field values are short: two overlapping word moves instead of a call.
        if n >= 8 && n <= 16 {
            to.storeBytes(of: from.loadUnaligned(as: UInt64.self), as: UInt64.self)
            (to + (n &- 8)).storeBytes(of: from.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self), as: UInt64.self)
        } else if n >= 4 && n < 8 {
            to.storeBytes(of: from.loadUnaligned(as: UInt32.self), as: UInt32.self)
            (to + (n &- 4)).storeBytes(of: from.loadUnaligned(fromByteOffset: n &- 4, as: UInt32.self), as: UInt32.self)
        } else if n < 4 {
            for i in 0..<n { to.storeBytes(of: from.load(fromByteOffset: i, as: UInt8.self), toByteOffset: i, as: UInt8.self) }
        } else {
            to.copyMemory(from: from, byteCount: n)
        }
        count &+= n
    }

    @inline(__always)
    public func append(_ bytes: UnsafeRawBufferPointer) {
        guard let from = bytes.baseAddress else { return }
        reserve(bytes.count)
        appendUnchecked(from, count: bytes.count)
    }

    public func append(_ bytes: UnsafeBufferPointer<UInt8>) { append(UnsafeRawBufferPointer(bytes)) }

    @inline(__always)
    public func append(_ s: StaticString) {
        // A one-character literal may be held as a scalar, without a pointer to its bytes.
        guard s.hasPointerRepresentation else { return s.withUTF8Buffer { append(UnsafeRawBufferPointer($0)) } }
        reserve(s.utf8CodeUnitCount)
        appendUnchecked(UnsafeRawPointer(s.utf8Start), count: s.utf8CodeUnitCount)
    }

    /// Text made by smtpcap itself (names, numbers as text); never wire text, which goes
    /// through `Escape`.
    public func append(utf8 s: String) {
        var s = s
        s.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    public func append(_ bytes: [UInt8]) { bytes.withUnsafeBytes { append($0) } }

    @inline(__always)
    public func append(span bytes: Span<UInt8>) {
        bytes.withUnsafeBufferPointer { append($0) }
    }

    /// `,"key":` (the comma unless `first`), with one capacity check and no call.
    @inline(__always)
    public func appendKey(_ k: StaticString, first: Bool) {
        guard k.hasPointerRepresentation else {
            if !first { append(0x2c) }
            append(0x22)
            append(k)
            return append(0x22, 0x3a)
        }
        let n = k.utf8CodeUnitCount
        reserve(n &+ 4)
        if !first { appendUnchecked(0x2c) }
        appendUnchecked(0x22)
        appendUnchecked(UnsafeRawPointer(k.utf8Start), count: n)
        appendUnchecked(0x22)
        appendUnchecked(0x3a)
    }

    /// The bytes from `offset` to the end, as text.
    public func string(from offset: Int) -> String {
        precondition(offset >= 0 && offset <= count)
        return String(decoding: UnsafeBufferPointer(start: base + offset, count: count - offset), as: UTF8.self)
    }

    /// A decimal integer.
    public func appendDecimal(_ v: Int64) {
        if capacity - count < 20 { grow(20) }
        var magnitude = v.magnitude
        if v < 0 {
            base[count] = 0x2d
            count &+= 1
        }
        if magnitude < 10 {
            base[count] = 0x30 &+ UInt8(magnitude)
            count &+= 1
            return
        }
        var digits = 1
        var m = magnitude
        while m >= 10_000 { digits &+= 4; m /= 10_000 }
        while m >= 10 { digits &+= 1; m /= 10 }
        var p = count &+ digits
        count = p
        while magnitude > 0 {
            p &-= 1
            base[p] = 0x30 &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
        }
    }

    /// Exactly `count` decimal digits of `v` (0 <= v < 10^count), zero-padded.
    @inline(__always)
    public func appendFixedDigits(_ v: Int, count digits: Int) {
        assert(v >= 0 && digits >= 0)
        if capacity - count < digits { grow(digits) }
        var v = v
        var p = count &+ digits
        count = p
        for _ in 0..<digits {
            p &-= 1
            base[p] = 0x30 &+ UInt8(truncatingIfNeeded: v % 10)
            v /= 10
        }
    }

    /// A decimal integer, zero-padded to `width` digits (a negative value gets its sign first).
    public func appendPadded(_ v: Int64, width: Int) {
        if v < 0 { append(0x2d) }
        var magnitude = v.magnitude
        var digits = 0
        var m = magnitude
        repeat { digits &+= 1; m /= 10 } while m > 0
        let total = max(digits, width)
        if capacity - count < total { grow(total) }
        var p = count &+ total
        let start = count
        count = p
        repeat {
            p &-= 1
            base[p] = 0x30 &+ UInt8(truncatingIfNeeded: magnitude % 10)
            magnitude /= 10
        } while magnitude > 0
        while p > start { p &-= 1; base[p] = 0x30 }
    }
}

/// Buffered writes to a file descriptor (standard output by default). The only writer of
/// report text.
public final class ReportOutput {
    let fd: Int32
    /// Reports write into it in place (`write(_ build:)`); flushed past 64 KiB.
    let buffer = ByteSink(capacity: 1 << 17)
    public var autoFlush: Bool

    public init(fd: Int32 = 1, autoFlush: Bool = false) {
        self.fd = fd
        self.autoFlush = autoFlush
    }

    deinit { flush() }

    public func write(_ s: String) {
        buffer.append(utf8: s)
        flushIfDue()
    }

    public func write(span bytes: Span<UInt8>) {
        buffer.append(span: bytes)
        flushIfDue()
    }

    /// Lets a report write straight into the buffer.
    public func write(_ build: (ByteSink) -> Void) {
        build(buffer)
        flushIfDue()
    }

    @inline(__always)
    func flushIfDue() {
        if autoFlush || buffer.count >= 1 << 16 { flush() }
    }

    public func flush() {
        var offset = 0
        let bytes = buffer.bytes
        while offset < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                break  // closed pipe or full disk: nothing sensible left to do with the report
            }
            offset += n
        }
        buffer.removeAll()
    }
}
