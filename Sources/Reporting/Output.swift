#if canImport(Glibc)
import Glibc
#endif

/// Buffered writes to a file descriptor (standard output by default). The only writer of
/// report text.
public final class ReportOutput {
    let fd: Int32
    var buffer: [UInt8] = []
    public var autoFlush: Bool

    public init(fd: Int32 = 1, autoFlush: Bool = false) {
        self.fd = fd
        self.autoFlush = autoFlush
        buffer.reserveCapacity(1 << 16)
    }

    deinit { flush() }

    public func write(_ s: String) {
        buffer.append(contentsOf: s.utf8)
        if autoFlush || buffer.count >= 1 << 16 { flush() }
    }

    public func write(bytes: [UInt8]) {
        buffer.append(contentsOf: bytes)
        if autoFlush || buffer.count >= 1 << 16 { flush() }
    }

    public func flush() {
        var offset = 0
        while offset < buffer.count {
            let n = buffer.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, $0.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                break  // closed pipe or full disk: nothing sensible left to do with the report
            }
            offset += n
        }
        buffer.removeAll(keepingCapacity: true)
    }
}
