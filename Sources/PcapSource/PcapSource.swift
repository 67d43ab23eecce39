import CGzipFile
import CPcap
#if canImport(Glibc)
import Glibc
#endif

/// One captured frame: valid only until the next call to `next()`.
public struct CapturedPacket {
    public var bytes: UnsafeRawBufferPointer
    /// Length on the wire (more than `bytes.count` when the snap length cut it).
    public var wireLength: Int
    public var seconds: Int64
    /// Nanoseconds: sources are opened with nanosecond precision.
    public var nanoseconds: Int32
    /// The link type (DLT) of the interface the frame came from: decode the frame by this,
    /// not by the source's `datalink`, as a pcapng file may hold several link types.
    public var linkType: Int32
    /// The interface's number in the file: 0 for classic pcap and live capture; for pcapng
    /// read by smtpcap's own reader, the Interface Description Blocks counted over all
    /// sections so far (a second section's interfaces get new numbers). See
    /// `PcapSource.interfaceName(_:)`.
    public var interface: Int32

    /// Lends the frame's bytes as a span, for the length of `body`.
    @inlinable @inline(__always)
    public func withBytes<R>(_ body: (Span<UInt8>) -> R) -> R {
        body(bytes.assumingMemoryBound(to: UInt8.self).span)
    }
}

/// A libpcap handle: an offline file (pcap or pcapng, any byte order and timestamp
/// precision), standard input, or a live interface.
///
/// A pcapng file may hold interfaces of several link types (`dumpcap -i eth0 -i any`,
/// `mergecap`), which libpcap 1.10 refuses; such a file is read by `PcapngRecords`, every
/// packet with its own interface's `linkType`. A filter is then compiled once per link type
/// as the link types appear, and `openDump` writes only the packets of the first interface's
/// link type (a pcap file has one), counting the others in `dumpSkipped`.
///
/// One thread reads a source, and only through its methods, so the reader's state is
/// `@exclusivity(unchecked)`: each is touched on every packet, where a class's stored
/// property would otherwise cost a dynamic exclusivity check per access.
public final class PcapSource {
    let handle: OpaquePointer
    @exclusivity(unchecked) var dumper: OpaquePointer?
    /// Multiplies the time stamps' sub-second field into nanoseconds (1000 when libpcap gives
    /// microseconds).
    @exclusivity(unchecked) var subsecondScale: Int32 = 1
    public let isLive: Bool
    /// Size of the file being read, for progress; nil for stdin, FIFOs and live capture.
    public let fileSize: Int64?
    @exclusivity(unchecked) var header: UnsafeMutablePointer<pcap_pkthdr>?
    @exclusivity(unchecked) var data: UnsafePointer<UInt8>?
    /// The stdio buffer of an offline file, freed after the file is closed.
    var fileBuffer: UnsafeMutableRawPointer?
    /// A classic pcap file read through a memory mapping instead of libpcap's stdio reads.
    @exclusivity(unchecked) var mapped: MappedRecords?
    /// The filter installed on a mapped file, run with `pcap_offline_filter`.
    @exclusivity(unchecked) var mappedFilter: bpf_program?
    /// The packet header handed to the filter and the dump file when reading a mapping.
    @exclusivity(unchecked) var mappedHeader = pcap_pkthdr()
    /// The first interface's link type, given to every packet but a pcapng reader's.
    let linkType: Int32
    /// A pcapng file read through a memory mapping by smtpcap's own reader.
    @exclusivity(unchecked) var pcapng: PcapngRecords?
    /// The filter installed, for the pcapng reader to compile per link type.
    @exclusivity(unchecked) var filterExpression: String?
    @exclusivity(unchecked) var linkFilters: [LinkFilter] = []
    /// The file (a regular pcapng file) for the pcapng reader to take over from libpcap when
    /// libpcap stops at an interface of another link type or snapshot length.
    var pcapngPath: String?
    /// A descriptor this source opened itself (libpcap could not open the file).
    var ownedDescriptor: Int32 = -1
    /// Packets read but not written to the dump file: their link type is not the first
    /// interface's, the only one a pcap file can say.
    public private(set) var dumpSkipped = 0
    /// Packets not handed out because the filter cannot be compiled for their link type.
    public private(set) var unfilterable = 0

    /// A filter compiled for one link type; nil when libpcap cannot compile it for that one.
    struct LinkFilter {
        var linkType: Int32
        var program: bpf_program?
    }

    init(handle: OpaquePointer, isLive: Bool, fileSize: Int64?, fileBuffer: UnsafeMutableRawPointer? = nil) {
        self.handle = handle
        self.isLive = isLive
        self.fileSize = fileSize
        self.fileBuffer = fileBuffer
        self.linkType = pcap_datalink(handle)
    }

    deinit {
        if let dumper { pcap_dump_close(dumper) }
        if var program = mappedFilter { pcap_freecode(&program) }
        freeLinkFilters()
        mapped?.unmap()
        pcapng?.unmap()
        pcap_close(handle)
        if ownedDescriptor >= 0 { close(ownedDescriptor) }
        fileBuffer?.deallocate()
    }


    /// libpcap reads a file record by record through stdio, whose default buffer is one 4 KiB
    /// block: a read system call per three packets. 64 KiB makes it one per fifty and still
    /// fits the CPU's second-level cache, from which libpcap copies each record out. The
    /// buffer must outlive the file (glibc ignores the size unless given the buffer).
    static let stdioBufferSize = 1 << 16

    static func bigBuffered(_ file: UnsafeMutablePointer<FILE>?, _ buffer: UnsafeMutableRawPointer) -> UnsafeMutablePointer<FILE>? {
        if let file { setvbuf(file, buffer.assumingMemoryBound(to: CChar.self), _IOFBF, stdioBufferSize) }
        return file
    }

    /// Opens a capture file; `-` reads standard input.
    public static func openOffline(_ path: String, reader: FileReader = .automatic) throws(PcapError) -> PcapSource {
        var errbuf = errorBuffer()
        var size: Int64?
        let opened: OpaquePointer?
        let buffer: UnsafeMutableRawPointer
        if path == "-" {
            guard let input = fdopen(0, "rb") else {
                throw PcapError(.unreadable, "cannot read standard input: \(String(cString: strerror(errno)))")
            }
            buffer = .allocate(byteCount: stdioBufferSize, alignment: 64)
            opened = pcap_fopen_offline_with_tstamp_precision(bigBuffered(input, buffer), UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
        } else {
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw PcapError(.unreadable, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                throw PcapError(.unreadable, "cannot read \(path): it is a directory")
            }
            guard access(path, R_OK) == 0 else {
                throw PcapError(.unreadable, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            if (st.st_mode & S_IFMT) == S_IFREG { size = Int64(st.st_size) }
            guard let file = openFile(path, size: &size) else {
                throw PcapError(.unreadable, "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            buffer = .allocate(byteCount: stdioBufferSize, alignment: 64)
            opened = pcap_fopen_offline_with_tstamp_precision(bigBuffered(file, buffer), UInt32(PCAP_TSTAMP_PRECISION_NANO), &errbuf)
            if opened == nil { fclose(file) }
        }
        guard let opened else {
            if path != "-" { buffer.deallocate() }  // standard input keeps it: it stays open
            let message = text(errbuf)
            if path != "-", size != nil, message.hasPrefix("an interface has a "), let source = openPcapng(path) { return source }
            let name = path == "-" ? "standard input" : path
            if message.contains("unknown file format") || message.contains("truncated dump file")
                || message.contains("bad dump file format") || message.contains("not a") {
                throw PcapError(.notACaptureFile, "\(name) is not a pcap or pcapng capture file (\(message))")
            }
            throw PcapError(.unreadable, "cannot read \(name): \(message)")
        }
        let source = PcapSource(handle: opened, isLive: false, fileSize: size, fileBuffer: buffer)
        if size != nil, let file = pcap_file(opened) {
            if isPcapng(fileno(file)) {
                source.pcapngPath = path
                if reader == .automatic { source.pcapng = PcapngRecords(fd: fileno(file), name: path) }
            } else if reader == .automatic {
                source.mapped = MappedRecords(fd: fileno(file), name: path, datalink: pcap_datalink(opened), snapshot: pcap_snapshot(opened))
            }
        }
        return source
    }

    /// A stdio stream of the file: decompressed through zlib when it is gzip-compressed (as
    /// logrotate leaves old captures); a compressed pcap file is read as a stream (not mapped:
    /// `size` becomes nil), a compressed pcapng file from a decompressed temporary copy.
    static func openFile(_ path: String, size: inout Int64?) -> UnsafeMutablePointer<FILE>? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        if smtpcap_is_gzip(fd) != 0 && smtpcap_gzip_holds_pcapng(fd) != 0 {
            // pcapng may change link type midway, which libpcap's reader stops at and
            // smtpcap's own reader (on a file) reads: decompressed to a temporary file.
            let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
            let plain = smtpcap_gzip_inflate(fd, dir)
            Glibc.close(fd)
            guard plain >= 0 else { return nil }
            size = Int64(lseek(plain, 0, SEEK_END))
            lseek(plain, 0, SEEK_SET)
            return fdopen(plain, "rb")
        }
        if smtpcap_is_gzip(fd) != 0 {
            size = nil
            return smtpcap_gzip_fopen(fd)  // takes the descriptor, also on failure
        }
        guard let file = fdopen(fd, "rb") else {
            Glibc.close(fd)
            return nil
        }
        return file
    }

    /// Opens an interface for live capture.
    public static func openLive(device: String, snapLength: Int32, promiscuous: Bool,
                                timeoutMilliseconds: Int32 = 100) throws(PcapError) -> PcapSource {
        var errbuf = errorBuffer()
        guard let h = pcap_create(device, &errbuf) else {
            throw PcapError(.other, "cannot capture on \(device): \(text(errbuf))")
        }
        pcap_set_snaplen(h, snapLength)
        pcap_set_promisc(h, promiscuous ? 1 : 0)
        // Packets come in blocks of the kernel's ring, handed over when a block fills or the
        // timeout passes: far fewer wake-ups than immediate mode at high rates, and a session
        // is still printed within a fraction of a second of its end.
        pcap_set_timeout(h, timeoutMilliseconds)
        pcap_set_buffer_size(h, 32 << 20)
        let nano = pcap_set_tstamp_precision(h, Int32(PCAP_TSTAMP_PRECISION_NANO)) == 0
        let status = pcap_activate(h)
        if status < 0 {
            let detail = String(cString: pcap_geterr(h))
            pcap_close(h)
            switch status {
            case PCAP_ERROR_PERM_DENIED, PCAP_ERROR_PROMISC_PERM_DENIED:
                throw PcapError(.permission, "no permission to capture on \(device): run as root or give the binary CAP_NET_RAW (\(detail))")
            case PCAP_ERROR_NO_SUCH_DEVICE:
                throw PcapError(.noSuchDevice, "no such interface: \(device) (see smtpcap -D)")
            default:
                throw PcapError(.other, "cannot capture on \(device): \(detail.isEmpty ? String(cString: pcap_statustostr(status)) : detail)")
            }
        }
        // Non-blocking reads and our own poll(2) with a short timeout: a quiet interface must
        // not keep the loop from seeing a signal or the end of --duration.
        if pcap_setnonblock(h, 1, &errbuf) != 0 {
            pcap_close(h)
            throw PcapError(.other, "cannot capture on \(device): \(text(errbuf))")
        }
        let source = PcapSource(handle: h, isLive: true, fileSize: nil)
        // Without nanosecond time stamps from the kernel, libpcap gives microseconds.
        if !nano || pcap_get_tstamp_precision(h) != Int32(PCAP_TSTAMP_PRECISION_NANO) { source.subsecondScale = 1000 }
        return source
    }

    /// Interfaces libpcap can capture on, as `name - description`.
    public static func listDevices() throws(PcapError) -> [(name: String, description: String?)] {
        var errbuf = errorBuffer()
        var list: UnsafeMutablePointer<pcap_if_t>?
        guard pcap_findalldevs(&list, &errbuf) == 0 else {
            throw PcapError(.other, "cannot list interfaces: \(text(errbuf))")
        }
        defer { pcap_freealldevs(list) }
        var out: [(String, String?)] = []
        var p = list
        while let d = p {
            out.append((String(cString: d.pointee.name), d.pointee.description.map { String(cString: $0) }))
            p = d.pointee.next
        }
        return out
    }

    public var datalink: Int32 { pcap_datalink(handle) }

    public var datalinkName: String {
        pcap_datalink_val_to_name(datalink).map { String(cString: $0) } ?? "DLT \(datalink)"
    }

    /// Compiles and installs a BPF filter (for the first interface's link type; a pcapng file
    /// of several has it compiled for each other one as it appears, and a packet of a link
    /// type it cannot be compiled for is left out and counted in `unfilterable`).
    public func setFilter(_ expression: String) throws(PcapError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw PcapError(.badFilter, "bad filter expression '\(expression)': \(String(cString: pcap_geterr(handle)))")
        }
        freeLinkFilters()
        filterExpression = expression
        if pcapng != nil {
            linkFilters = [LinkFilter(linkType: linkType, program: program)]
            return
        }
        if mapped != nil {
            // libpcap runs the filter inside pcap_next_ex; the mapped reader runs it itself.
            if var old = mappedFilter { pcap_freecode(&old) }
            mappedFilter = program
            return
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw PcapError(.badFilter, "cannot install filter '\(expression)': \(String(cString: pcap_geterr(handle)))")
        }
    }

    /// Also writes every packet read to a pcap file. The file has the first interface's link
    /// type: a packet of another (a pcapng file of several) is not written, but counted in
    /// `dumpSkipped`.
    public func openDump(_ path: String) throws(PcapError) {
        guard let d = pcap_dump_open(handle, path) else {
            throw PcapError(.unreadable, "cannot write \(path): \(String(cString: pcap_geterr(handle)))")
        }
        dumper = d
    }

    /// The same into a file the caller opened (the live evidence spool); takes `fd`.
    public func openDump(fd: Int32, name: String) throws(PcapError) {
        guard let file = fdopen(fd, "wb") else {
            Glibc.close(fd)
            throw PcapError(.unreadable, "cannot write \(name): \(String(cString: strerror(errno)))")
        }
        guard let d = pcap_dump_fopen(handle, file) else {
            fclose(file)
            throw PcapError(.unreadable, "cannot write \(name): \(String(cString: pcap_geterr(handle)))")
        }
        dumper = d
    }

    @inline(__always)
    public func next() -> NextPacket {
        if mapped != nil { return nextMapped() }
        if pcapng != nil { return nextPcapng() }
        let status = pcap_next_ex(handle, &header, &data)
        switch status {
        case 1:
            guard let header, let data else { return .timeout }
            let h = header.pointee
            if let dumper {
                pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), header, data)
            }
            return .packet(CapturedPacket(
                bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)),
                wireLength: Int(h.len),
                seconds: Int64(h.ts.tv_sec),
                nanoseconds: Int32(truncatingIfNeeded: h.ts.tv_usec) &* subsecondScale,
                linkType: linkType, interface: 0))
        case 0:
            if isLive {
                var fds = pollfd(fd: pcap_get_selectable_fd(handle), events: Int16(POLLIN), revents: 0)
                _ = poll(&fds, 1, 100)
            }
            return .timeout
        case PCAP_ERROR_BREAK:
            return .end
        default:
            let message = String(cString: pcap_geterr(handle))
            if pcapngPath != nil, message.hasPrefix("an interface has a "), takeOver() { return next() }
            return .error(message)
        }
    }

    @inline(__always)
    func nextPcapng() -> NextPacket {
        while true {
            switch pcapng!.next() {
            case .record(let record):
                let packet = CapturedPacket(bytes: record.bytes, wireLength: Int(record.wireLength), seconds: record.seconds,
                                            nanoseconds: record.nanoseconds, linkType: record.linkType, interface: record.interface)
                if filterExpression == nil && dumper == nil { return .packet(packet) }
                mappedHeader.ts.tv_sec = .init(truncatingIfNeeded: packet.seconds)
                mappedHeader.ts.tv_usec = .init(truncatingIfNeeded: packet.nanoseconds)
                mappedHeader.caplen = UInt32(truncatingIfNeeded: packet.bytes.count)
                mappedHeader.len = record.wireLength
                let start = packet.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                if filterExpression != nil {
                    let i = linkFilter(record.linkType)
                    guard linkFilters[i].program != nil else {
                        unfilterable += 1
                        continue
                    }
                    if pcap_offline_filter(&linkFilters[i].program!, &mappedHeader, start) == 0 { continue }
                }
                if let dumper {
                    if record.linkType == linkType {
                        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &mappedHeader, start)
                    } else {
                        dumpSkipped += 1
                    }
                }
                return .packet(packet)
            case .end: return .end
            case .error(let message): return .error(message)
            }
        }
    }

    @inline(__always)
    func nextMapped() -> NextPacket {
        while true {
            switch mapped!.next() {
            case .record(let record):
                let packet = CapturedPacket(bytes: record.bytes, wireLength: Int(record.wireLength),
                                            seconds: record.seconds, nanoseconds: record.nanoseconds,
                                            linkType: linkType, interface: 0)
                if mappedFilter == nil && dumper == nil { return .packet(packet) }
                mappedHeader.ts.tv_sec = .init(truncatingIfNeeded: packet.seconds)
                mappedHeader.ts.tv_usec = .init(truncatingIfNeeded: packet.nanoseconds)
                mappedHeader.caplen = UInt32(truncatingIfNeeded: packet.bytes.count)
                mappedHeader.len = record.wireLength
                let start = packet.bytes.baseAddress!.assumingMemoryBound(to: UInt8.self)
                if mappedFilter != nil, pcap_offline_filter(&mappedFilter!, &mappedHeader, start) == 0 { continue }
                if let dumper {
                    pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &mappedHeader, start)
                }
                return .packet(packet)
            case .end: return .end
            case .error(let message): return .error(message)
            case .grown(let offset): return handOver(at: offset)
            }
        }
    }

    /// The file grew while it was read through its mapping: libpcap reads on from `offset`
    /// (the mapping is dropped; an installed filter moves to libpcap).
    func handOver(at offset: Int) -> NextPacket {
        mapped?.unmap()
        mapped = nil
        guard let file = pcap_file(handle), fseeko(file, off_t(offset), SEEK_SET) == 0 else {
            return .error("cannot read on past \(offset) bytes: \(String(cString: strerror(errno)))")
        }
        if var program = mappedFilter {
            mappedFilter = nil
            defer { pcap_freecode(&program) }
            if pcap_setfilter(handle, &program) != 0 { return .error(String(cString: pcap_geterr(handle))) }
        }
        return next()
    }

    public func flushDump() {
        if let dumper { pcap_dump_flush(dumper) }
    }

    /// Bytes of the file consumed so far, for progress.
    public var fileOffset: Int64? {
        if let mapped { return Int64(mapped.offset) }
        if let pcapng { return Int64(pcapng.offset) }
        guard !isLive, let f = pcap_file(handle) else { return nil }
        let at = ftello(f)
        return at >= 0 ? Int64(at) : nil
    }

    /// Kernel statistics of a live capture.
    public func statistics() -> (received: UInt64, dropped: UInt64, interfaceDropped: UInt64)? {
        guard isLive else { return nil }
        var s = pcap_stat()
        guard pcap_stats(handle, &s) == 0 else { return nil }
        return (UInt64(s.ps_recv), UInt64(s.ps_drop), UInt64(s.ps_ifdrop))
    }

    /// Whether packets come from a memory mapping (false: through libpcap).
    public var readsMapping: Bool { mapped != nil || pcapng != nil }

    /// The file is pcapng (read by smtpcap's reader, or by libpcap that may hand it over): its
    /// interfaces may have names.
    public var readsPcapng: Bool { pcapng != nil || pcapngPath != nil }
}

/// Writes a pcap file (nanosecond time stamps) of chosen packets into a descriptor the caller
/// opened (evidence files: created exclusively, no symbolic link followed).
public final class PcapWriter {
    let dead: OpaquePointer
    let dumper: OpaquePointer

    /// Takes `fd` (closed with the writer); nil when libpcap cannot start the file.
    public init?(fd: Int32, linkType: Int32, snapLength: Int32 = 262_144) {
        guard let dead = pcap_open_dead_with_tstamp_precision(linkType, snapLength, UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            Glibc.close(fd)
            return nil
        }
        guard let file = fdopen(fd, "wb") else {
            Glibc.close(fd)
            pcap_close(dead)
            return nil
        }
        guard let dumper = pcap_dump_fopen(dead, file) else {
            fclose(file)
            pcap_close(dead)
            return nil
        }
        self.dead = dead
        self.dumper = dumper
    }

    public func write(_ packet: CapturedPacket) {
        var header = pcap_pkthdr()
        header.ts.tv_sec = Int(packet.seconds)
        header.ts.tv_usec = Int(packet.nanoseconds)
        header.caplen = UInt32(packet.bytes.count)
        header.len = UInt32(max(packet.wireLength, packet.bytes.count))
        pcap_dump(UnsafeMutableRawPointer(dumper).assumingMemoryBound(to: UInt8.self), &header,
                  packet.bytes.baseAddress?.assumingMemoryBound(to: UInt8.self))
    }

    /// Flushes and closes; false when the data could not all be written.
    public func close() -> Bool {
        var flushed = pcap_dump_flush(dumper) == 0
        if let file = pcap_dump_file(dumper), ferror(file) != 0 { flushed = false }
        pcap_dump_close(dumper)
        pcap_close(dead)
        return flushed
    }
}
