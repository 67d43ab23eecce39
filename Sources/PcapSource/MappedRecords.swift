import CPcap
import CSignalGuard
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The records of a classic pcap file, read in place from a memory mapping.
///
/// libpcap reads a file with two `fread` calls per record: the kernel copies the file into
/// stdio's buffer and stdio copies each record into libpcap's packet buffer. On a capture of
/// full-sized segments that is most of a bare `pcap_next_ex` loop's time. A mapping hands out
/// each record where it lies, and the pages behind the reader are given back as it goes, so
/// the memory in use stays a few MiB at any file size.
///
/// Only the plain format is read here: magic `a1b2c3d4` (microseconds) or `a1b23c4d`
/// (nanoseconds) in this machine's byte order, version 2.4, a link type smtpcap decodes.
/// libpcap has already opened the file and checked its header; everything else (pcapng,
/// byte-swapped files with their pseudo-header fix-ups, versions whose length fields are
/// swapped, standard input, pipes) stays with libpcap. Each record gets libpcap's treatment:
/// the same time stamp conversion, the same cut to the snapshot length, and the same errors
/// word for word on a damaged record. The test suite and the `pcap` fuzz harness compare the
/// two readers packet by packet.
struct MappedRecords {
    enum Next {
        case record(Record)
        case end
        case error(String)
        /// The file grew past the mapping (it is still being written): libpcap reads on from
        /// this offset, as it would have read whatever was there.
        case grown(at: Int)
    }

    struct Record {
        var bytes: UnsafeRawBufferPointer
        var wireLength: UInt32
        var seconds: Int64
        var nanoseconds: Int32
    }

    static let fileHeaderSize = 24
    static let recordHeaderSize = 16
    /// libpcap's `MAXIMUM_SNAPLEN`, its limit for a sane record on these link types.
    static let maximumCaptureLength: UInt32 = 262_144
    /// Pages more than this far behind the reader are given back to the kernel, in steps of
    /// this size. Larger than any record, so the record handed out is never among them.
    static let releaseStep = 1 << 20
    static let decodedLinkTypes: Set<Int32> = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276]

    let base: UnsafeRawPointer
    let size: Int
    let slot: Int32
    /// libpcap's descriptor for the file (its FILE owns it): checked again for a new size.
    let fd: Int32
    let snapshot: UInt32
    let nanosecondStamps: Bool
    /// Offset of the next record header.
    private(set) var offset = MappedRecords.fileHeaderSize
    /// Pages below this offset have been given back.
    private var released = 0
    /// A damaged record was reported: the file ends there.
    private var failed = false
    /// Where the records end: the mapped size, or the file's new size once the periodic check
    /// has found it shorter (what lies before the cut is still read, as libpcap would).
    private var limit: Int

    /// Maps the file open on `fd`, or returns nil when it is not one this reader handles (the
    /// caller goes on with libpcap).
    init?(fd: Int32, name: String, datalink: Int32, snapshot: Int32) {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
              st.st_size >= Int64(Self.fileHeaderSize), let length = Int(exactly: st.st_size), snapshot > 0,
              Self.decodedLinkTypes.contains(datalink) else { return nil }
        var header = (UInt32(0), UInt16(0), UInt16(0))
        guard withUnsafeMutableBytes(of: &header, { pread(fd, $0.baseAddress, 8, 0) }) == 8 else { return nil }
        let (magic, major, minor) = header
        guard magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d, major == 2, minor == 4 else { return nil }
        guard let (start, slot) = Self.map(fd: fd, length: length, name: name) else { return nil }
        self.base = start
        self.size = length
        self.limit = length
        self.fd = fd
        self.slot = slot
        self.snapshot = UInt32(snapshot)
        self.nanosecondStamps = magic == 0xa1b2_3c4d
    }

    func unmap() {
        Self.unmap(base, size: size, slot: slot)
    }

    /// Maps a file for reading in order, under the SIGBUS guard (a file cut short while mapped
    /// ends the run with one line instead of a crash). Shared with the pcapng reader.
    static func map(fd: Int32, length: Int, name: String) -> (start: UnsafeRawPointer, slot: Int32)? {
        guard let start = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), start != MAP_FAILED else { return nil }
        smtpcap_install_sigbus_guard()
        let slot = smtpcap_register_mapping(start, length,
            "smtpcap: \(name): the file became shorter while it was being read, or could not be read (I/O error)")
        guard slot >= 0 else {
            munmap(start, length)
            return nil
        }
        _ = madvise(start, length, MADV_SEQUENTIAL)
        return (UnsafeRawPointer(start), slot)
    }

    static func unmap(_ base: UnsafeRawPointer, size: Int, slot: Int32) {
        smtpcap_unregister_mapping(slot)
        munmap(UnsafeMutableRawPointer(mutating: base), size)
    }

    @inline(__always)
    mutating func next() -> Next {
        let remaining = limit &- offset
        guard remaining >= Self.recordHeaderSize, !failed else {
            if failed { return .end }
            if let changed = sizeChanged() { return changed }
            if remaining == 0 { return .end }
            return fail("truncated dump file; tried to read \(Self.recordHeaderSize) header bytes, only got \(remaining)")
        }
        let header = base + offset
        let seconds = header.loadUnaligned(as: Int32.self)
        let subsecond = header.loadUnaligned(fromByteOffset: 4, as: Int32.self)
        let captured = header.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        let wire = header.loadUnaligned(fromByteOffset: 12, as: UInt32.self)
        // A record header of zeros (1970, no bytes) is what a mapping shows past the end of a
        // file cut inside a page: check the size before taking it as a record.
        if seconds == 0 && subsecond == 0 && captured == 0 && wire == 0, let changed = sizeChanged() { return changed }
        let available = remaining &- Self.recordHeaderSize
        var kept = captured
        if captured > Self.maximumCaptureLength {
            // The file's snapshot length may be larger still: libpcap only replaces 0 and
            // lengths past INT_MAX.
            return fail(captured > snapshot
                ? "invalid packet capture length \(captured), bigger than snaplen of \(snapshot)"
                : "invalid packet capture length \(captured), bigger than maximum of \(Self.maximumCaptureLength)")
        }
        if captured > snapshot {
            // libpcap cuts such a record to the snapshot length and skips the rest.
            if available < Int(snapshot) {
                if let changed = sizeChanged() { return changed }
                return fail("truncated dump file; tried to read \(snapshot) captured bytes, only got \(available)")
            }
            kept = snapshot
        }
        guard available >= Int(captured) else {
            if let changed = sizeChanged() { return changed }
            return fail("truncated dump file; tried to read \(captured) captured bytes, only got \(available)")
        }
        let data = header + Self.recordHeaderSize
        offset = offset &+ Self.recordHeaderSize &+ Int(captured)
        if offset &- released >= 2 &* Self.releaseStep { release() }
        return .record(Record(
            bytes: UnsafeRawBufferPointer(start: data, count: Int(kept)),
            wireLength: wire,
            seconds: Int64(seconds),
            nanoseconds: nanosecondStamps ? subsecond : Int32(truncatingIfNeeded: Int64(subsecond) &* 1000)))
    }

    private mutating func fail(_ message: String) -> Next {
        failed = true
        return .error(message)
    }

    /// At the end of the mapping, or where a record does not fit in it: whether the file has
    /// changed size since it was mapped. Grown (still being written): libpcap reads on. Shrunk
    /// (truncated or rewritten in place): an error, not the zeros a mapping shows for the rest
    /// of a page past the new end. Pages wholly past it raise SIGBUS, which the guard reports.
    private mutating func sizeChanged() -> Next? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        if st.st_size > Int64(size) { return .grown(at: offset) }
        if st.st_size < Int64(size) { return fail(Self.shrunk) }
        return nil
    }

    static let shrunk = "the file became shorter while it was being read"

    /// Gives back the pages more than `releaseStep` behind the reader: they would otherwise
    /// stay in the process's resident set until the file is closed.
    private mutating func release() {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = (offset &- Self.releaseStep) & ~(page &- 1)
        guard end > released else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + released), end &- released, MADV_DONTNEED)
        released = end
        // Once a MiB: a file cut short is noticed here, before its missing pages are reached.
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size < Int64(limit) { limit = max(offset, Int(st.st_size)) }
    }
}
