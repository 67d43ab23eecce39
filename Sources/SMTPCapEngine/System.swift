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

    /// Opens `path` for writing, mode 0600, never following a symbolic link (O_NOFOLLOW): a
    /// new file when `exclusive` (an existing one is an error, never overwritten), else
    /// created or opened as it is, without truncating (the writer truncates when it writes:
    /// a run that fails before leaves the file as it was).
    static func createFile(_ path: String, exclusive: Bool) throws(SystemError) -> Int32 {
        let fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC | (exclusive ? O_EXCL : 0), 0o600)
        guard fd < 0 else { return fd }
        throw SystemError("cannot write \(path): \(createFailure(errno))")
    }

    /// A new file `name` in the directory open on `directory` (see `openDirectory`): created
    /// exclusively, mode 0600, no symbolic link followed; given to `owner` when set.
    static func createFile(in directory: Int32, _ name: String, owner: (uid: UInt32, gid: UInt32)?) throws(SystemError) -> Int32 {
        let fd = openat(directory, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SystemError("cannot write \(name): \(createFailure(errno))") }
        if let owner { _ = fchown(fd, owner.uid, owner.gid) }
        return fd
    }

    static func createFailure(_ code: Int32) -> String {
        code == ELOOP ? "it is a symbolic link" : code == EEXIST ? "it exists (not overwritten)" : String(cString: strerror(code))
    }

    /// Empties the file open on `fd` and writes `bytes` from its start.
    static func replaceContents(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        guard ftruncate(fd, 0) == 0, lseek(fd, 0, SEEK_SET) == 0 else { return false }
        return write(fd, bytes)
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

    /// The evidence directory, opened for creating files in it: made (0700) when missing, and
    /// then given to `owner` (the user a live capture switches to); refused when it, or what
    /// the path names, is a symbolic link (trailing slashes are dropped first, so `link/`
    /// is the link too) or not a directory. Files are then made relative to the descriptor,
    /// so a directory swapped after the check is not followed.
    static func openDirectory(_ path: String, owner: (uid: UInt32, gid: UInt32)?) throws(SystemError) -> Int32 {
        var name = path
        while name.count > 1 && name.hasSuffix("/") { name.removeLast() }
        let made = mkdir(name, 0o700) == 0
        if !made && errno != EEXIST {
            throw SystemError("cannot use \(path) for evidence: \(String(cString: strerror(errno)))")
        }
        let fd = open(name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else {
            let saved = errno
            var target = [CChar](repeating: 0, count: 8)
            let isLink = saved == ELOOP || readlink(name, &target, target.count) >= 0
            let reason = isLink ? "it is a symbolic link" : saved == ENOTDIR ? "not a directory" : String(cString: strerror(saved))
            throw SystemError("refusing \(path) for evidence: \(reason)")
        }
        if made, let owner { _ = fchown(fd, owner.uid, owner.gid) }
        return fd
    }

    /// The user and group of `user`, when smtpcap runs as root and will switch to them.
    static func account(_ user: String?) -> (uid: UInt32, gid: UInt32)? {
        guard let user, user != "root", geteuid() == 0, let pw = getpwnam(user) else { return nil }
        return (pw.pointee.pw_uid, pw.pointee.pw_gid)
    }

    /// A new spool file in `$TMPDIR` (mkstemp: a fresh name, mode 0600), given to `owner` so
    /// that it can still be read back and removed after privileges are dropped.
    static func spoolFile(owner: (uid: UInt32, gid: UInt32)?) throws(SystemError) -> (fd: Int32, path: String) {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(dir)/smtpcap-spool-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw SystemError("cannot make a spool file in \(dir): \(String(cString: strerror(errno)))") }
        if let owner { _ = fchown(fd, owner.uid, owner.gid) }
        return (fd, template.withUnsafeBufferPointer { String(cString: $0.baseAddress!) })
    }

    /// Whether the process may create files in the directory open on `fd` (checked after
    /// dropping privileges).
    static func canWrite(directory fd: Int32) -> Bool {
        faccessat(fd, ".", W_OK | X_OK, 0) == 0
    }

    /// Whether two paths name one existing file (the same device and inode, through links).
    static func sameFile(_ a: String, _ b: String) -> Bool {
        guard let x = realpath(a, nil) else { return false }
        defer { free(x) }
        guard let y = realpath(b, nil) else { return false }
        defer { free(y) }
        return strcmp(x, y) == 0
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
