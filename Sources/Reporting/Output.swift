#if canImport(Glibc)
import Glibc
#endif

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

    public func write(bytes: UnsafeRawBufferPointer) {
        buffer.append(bytes)
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
