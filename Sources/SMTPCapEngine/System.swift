import Synchronization
#if canImport(Glibc)
import Glibc
#endif

// The operating system's services the engine uses: the stop flag, clocks, temporary files,
// dropping privileges. The only engine file that handles C pointers.

/// Set by SIGINT/SIGTERM; the capture loop checks it and ends cleanly.
let stopRequested = Atomic<Bool>(false)

/// Asks a running engine to stop at the next packet (signal handlers call this).
public func requestStop() {
    stopRequested.store(true, ordering: .relaxed)
}

/// Writes all of `text` to standard output: short writes continued, EINTR retried. False when
/// the write failed (a closed pipe).
public func writeStandardOutput(_ text: String) -> Bool {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let n = bytes.withUnsafeBytes { Glibc.write(1, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return false }
        bytes = bytes.dropFirst(n)
    }
    return true
}

enum System {
    static func monotonicSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// The wall clock, as capture time on a live interface.
    static func now() -> (seconds: Int64, nanoseconds: Int32) {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return (Int64(ts.tv_sec), Int32(ts.tv_nsec))
    }

    /// An unlinked temporary file (nothing left behind, whatever happens), or -1.
    static func temporaryFile() -> Int32 {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(dir)/smtpcap-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd >= 0 { template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        return fd
    }

    /// Reads everything written to a temporary file, 64 KiB at a time, into `consume`; closes it.
    static func drainTemporary(_ fd: Int32, _ consume: (Span<UInt8>) -> Void) {
        guard fd >= 0 else { return }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            consume(chunk.span.extracting(0..<n))
            offset += off_t(n)
        }
    }

    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// A new empty file's path in `$TMPDIR` (made with mkstemp, mode 0600), for a capture
    /// smtpcap writes and reads back itself.
    static func temporaryPath(prefix: String) -> String? {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(dir)/\(prefix)-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { return nil }
        _ = Glibc.close(fd)
        return template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
    }

    /// Opens `name` in the directory `directory` (a path or "") for writing: a new file when
    /// `exclusive` (an existing one is an error, never overwritten), else created or truncated.
    /// A symbolic link is refused either way (O_NOFOLLOW).
    static func createFile(_ path: String, exclusive: Bool) throws(SystemError) -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : O_TRUNC)
        let fd = open(path, flags, 0o644)
        guard fd < 0 else { return fd }
        let reason = errno == ELOOP ? "it is a symbolic link" : errno == EEXIST ? "it exists (not overwritten)" : String(cString: strerror(errno))
        throw SystemError("cannot write \(path): \(reason)")
    }

    /// Writes all of `bytes` to `fd`; false on an error.
    static func write(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var rest = bytes[...]
        while !rest.isEmpty {
            let n = rest.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            rest = rest.dropFirst(n)
        }
        return true
    }

    /// Makes `path` a directory smtpcap can write evidence into: created (0750) when missing,
    /// refused when it is a symbolic link or not a directory. With `owner` (the user a live
    /// capture switches to), a directory made here is given to that user.
    static func prepareDirectory(_ path: String, owner: String?) throws(SystemError) {
        let made = mkdir(path, 0o750) == 0
        if !made && errno != EEXIST {
            throw SystemError("cannot use \(path) for evidence: \(String(cString: strerror(errno)))")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let saved = errno
            var target = [CChar](repeating: 0, count: 8)
            let isLink = saved == ELOOP || readlink(path, &target, target.count) >= 0
            let reason = isLink ? "it is a symbolic link" : saved == ENOTDIR ? "not a directory" : String(cString: strerror(saved))
            throw SystemError("refusing \(path) for evidence: \(reason)")
        }
        _ = Glibc.close(fd)
        guard made, let owner, geteuid() == 0, owner != "root", let pw = getpwnam(owner) else { return }
        _ = chown(path, pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    /// Whether the process may create files in `path` (checked after dropping privileges).
    static var processID: Int32 { getpid() }

    static func canWrite(_ path: String) -> Bool {
        access(path, W_OK | X_OK) == 0
    }

    static func remove(_ path: String) {
        _ = unlink(path)
    }

    static func sleep(milliseconds: Int) {
        var ts = timespec(tv_sec: milliseconds / 1000, tv_nsec: (milliseconds % 1000) * 1_000_000)
        var left = timespec()
        while nanosleep(&ts, &left) != 0 && errno == EINTR { ts = left }
    }

    /// Switches to `user` after a live capture was opened (as tcpdump's -Z does). Nothing to do
    /// unless running as root; "root" keeps the privileges.
    static func dropPrivileges(to user: String) throws(SystemError) {
        guard geteuid() == 0 else { return }
        if user == "root" { return }
        guard let pw = getpwnam(user) else {
            throw SystemError("cannot drop privileges: no user '\(user)' (use -Z root to keep them)")
        }
        let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
        guard setgroups(0, nil) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw SystemError("cannot drop privileges to '\(user)': \(String(cString: strerror(errno)))")
        }
    }
}

struct SystemError: Error {
    var message: String
    init(_ message: String) { self.message = message }
}
