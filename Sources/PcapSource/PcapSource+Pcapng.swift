import CPcap
#if canImport(Glibc)
import Glibc
#endif

/// The pcapng side of `PcapSource`: opening a file with smtpcap's own reader, taking over
/// from libpcap, a filter per link type, the interfaces.
extension PcapSource {
    /// Whether the file starts with a pcapng Section Header Block.
    static func isPcapng(_ fd: Int32) -> Bool {
        var magic: UInt32 = 0
        return pread(fd, &magic, 4, 0) == 4 && magic == PcapngRecords.sectionHeader
    }

    /// A pcapng file libpcap would not open because of its interfaces, read by smtpcap's own
    /// reader with a dead libpcap handle of the first link type (for filters and dumps).
    static func openPcapng(_ path: String) -> PcapSource? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        guard let records = PcapngRecords(fd: fd, name: path),
              let dead = pcap_open_dead_with_tstamp_precision(records.fileLinkType, Int32(records.fileSnapshot),
                                                              UInt32(PCAP_TSTAMP_PRECISION_NANO)) else {
            close(fd)
            return nil
        }
        var st = stat()
        let source = PcapSource(handle: dead, isLive: false, fileSize: fstat(fd, &st) == 0 ? Int64(st.st_size) : nil)
        source.ownedDescriptor = fd
        source.pcapng = records
        return source
    }

    /// libpcap stopped at an interface of another link type or snapshot length: the pcapng
    /// reader maps the file and reads on after that interface's block, where libpcap's file
    /// position is (the packets before it are not handed out again).
    func takeOver() -> Bool {
        defer { pcapngPath = nil }
        guard let path = pcapngPath, let file = pcap_file(handle) else { return false }
        let at = ftello(file)
        guard at > 0, let records = PcapngRecords(fd: fileno(file), name: path, quietUntil: Int(at)) else { return false }
        pcapng = records
        return true
    }

    /// The index of the filter compiled for `type`, compiled (with a dead handle of that link
    /// type) the first time a packet of it comes.
    func linkFilter(_ type: Int32) -> Int {
        if let i = linkFilters.firstIndex(where: { $0.linkType == type }) { return i }
        var program = bpf_program()
        let compiler = type == linkType ? handle
            : pcap_open_dead_with_tstamp_precision(type, Int32(PcapngRecords.maximumSnapshot(type)), UInt32(PCAP_TSTAMP_PRECISION_NANO))
        var compiled = false
        if let compiler, let filterExpression {
            compiled = pcap_compile(compiler, &program, filterExpression, 1, PCAP_NETMASK_UNKNOWN) == 0
            if compiler != handle { pcap_close(compiler) }
        }
        linkFilters.append(LinkFilter(linkType: type, program: compiled ? program : nil))
        return linkFilters.count - 1
    }

    /// The if_name of interface `number` (`CapturedPacket.interface`); nil when it had none,
    /// or the file is not pcapng read by smtpcap's own reader.
    public func interfaceName(_ number: Int32) -> String? {
        pcapng?.interfaceName(Int(number))
    }

    /// Interfaces seen so far: the pcapng reader's count over all sections; 1 otherwise.
    public var interfaceCount: Int { pcapng.map { max($0.interfaces.count, 1) } ?? 1 }

    /// Where libpcap would have stopped with an error on a pcapng file this source reads on
    /// (an interface of another link type or snapshot length, a section of the other byte
    /// order): the offset of that block. For the tests and the fuzz harness.
    @_spi(Testing) public var libpcapWouldStopAt: Int? { pcapng?.libpcapStop }

    func freeLinkFilters() {
        for i in linkFilters.indices where linkFilters[i].program != nil { pcap_freecode(&linkFilters[i].program!) }
        linkFilters = []
    }

    /// Turns off the pcapng reader's taking over from libpcap: what libpcap alone gives, for
    /// the tests and the fuzz harness to compare with.
    @_spi(Testing) public func keepToLibpcap() { pcapngPath = nil }
}
