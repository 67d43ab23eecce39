import CSignalGuard
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The packets of a pcapng file, read in place from a memory mapping, each with the link type
/// of its own interface.
///
/// libpcap 1.10 reads only pcapng files whose interfaces all have the first one's link type
/// and snapshot length ("an interface has a type N different from the type of the first
/// interface"), which is what `dumpcap -i eth0 -i any` or `mergecap` of two link types write.
/// This reader keeps a table of every interface (link type, snapshot length, time stamp
/// resolution and offset, name) and hands out each packet with its interface's link type.
///
/// Everything else is libpcap's behaviour, block by block (sf-pcapng.c, libpcap 1.10): the
/// same checks of every block length and option length in the same order, the same errors
/// word for word, the same cut of Simple Packet Blocks to the snapshot length, the same time
/// stamp conversion to nanoseconds (resolution, scaling, offset, with its wrap-arounds). Where
/// libpcap would stop and this reader reads on (an interface of another link type or snapshot
/// length, a section of the other byte order), `libpcapStop` says where. The tests and the
/// `pcapng` fuzz harness compare the two readers packet by packet.
///
/// Not done: libpcap's pseudo-header fix-ups of link types smtpcap does not decode (USB,
/// NFLOG: their bytes are handed out as written), and the SocketCAN identifier of Linux
/// cooked captures in a section of the other byte order (libpcap swaps it in its copy).
struct PcapngRecords {
    enum Next {
        case record(Record)
        case end
        case error(String)
    }

    struct Record {
        var bytes: UnsafeRawBufferPointer
        var wireLength: UInt32
        var seconds: Int64
        var nanoseconds: Int32
        var linkType: Int32
        /// The interface's number in the file: IDBs counted over all sections so far.
        var interface: Int32
    }


    /// A block as libpcap's `read_block` leaves it: its type, and its body between the header
    /// and the trailer.
    struct Block {
        var type: UInt32
        var start: Int
        var body: Int
        var bodyEnd: Int
        var swapped: Bool
    }


    let name: String
    /// The file's descriptor (libpcap's FILE owns it): checked again for a new size.
    let fd: Int32
    private(set) var base: UnsafeRawPointer
    private(set) var size: Int
    private var slot: Int32
    /// Offset of the next block.
    private(set) var offset = 0
    private var released = 0
    private var failed = false
    private var limit: Int
    /// The byte order of the current section.
    private var swapped = false
    private let firstSwapped: Bool
    /// The first interface's link type and snapshot length: libpcap's `p->linktype` and
    /// `p->snapshot`, which every later interface must match for libpcap.
    private(set) var fileLinkType: Int32 = 0
    private(set) var fileSnapshot: UInt32 = 0
    private var maximumBlock = PcapngRecords.initialMaximumBlock
    private(set) var interfaces: [Interface] = []
    /// Index in `interfaces` of the current section's interface 0.
    private var sectionStart = 0
    private var names: [UInt8] = []
    /// Packets of blocks ending at or before this offset are read but not handed out: libpcap
    /// has already handed them out before this reader took over.
    private let quietUntil: Int
    /// Offset of the first block where libpcap would have stopped with an error and this
    /// reader read on.
    private(set) var libpcapStop: Int?

    /// Maps the pcapng file open on `fd` and reads up to its first interface as libpcap's
    /// open does; nil when that fails (libpcap then reads the file, or reports why not).
    init?(fd: Int32, name: String, quietUntil: Int = 0) {
        var st = stat()
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG, st.st_size >= 28,
              let length = Int(exactly: st.st_size),
              let mapping = Self.map(fd: fd, length: length, name: name) else { return nil }
        let start = mapping.start
        self.base = start
        self.size = length
        self.limit = length
        self.slot = mapping.slot
        self.fd = fd
        self.name = name
        self.quietUntil = quietUntil
        let magic = start.loadUnaligned(fromByteOffset: 8, as: UInt32.self)
        self.firstSwapped = magic == Self.byteOrderMagic.byteSwapped
        self.swapped = firstSwapped
        do throws(Failure) {
            try openSection()
        } catch {
            unmap()
            return nil
        }
    }

    static func map(fd: Int32, length: Int, name: String) -> (start: UnsafeRawPointer, slot: Int32)? {
        MappedRecords.map(fd: fd, length: length, name: name)
    }

    func unmap() {
        MappedRecords.unmap(base, size: size, slot: slot)
    }

    /// libpcap's `pcap_ng_check_header`: the first Section Header Block (its length only
    /// range-checked, its trailer not read), then blocks up to the first interface.
    private mutating func openSection() throws(Failure) {
        guard load32(0) == Self.sectionHeader, load32(8) == Self.byteOrderMagic else { throw Failure(message: "not pcapng") }
        let length = load32(4)
        guard length >= 28, length <= Self.maximumFirstSection, Int(length) <= size,
              load16(12) == 1, load16(14) == 0 || load16(14) == 2 else { throw Failure(message: "bad section header") }
        offset = Int(length)
        while true {
            guard let block = try readBlock(opening: true) else { throw Failure(message: "no interfaces") }
            switch block.type {
            case Self.interfaceDescription:
                var cursor = block.body
                let fixed = try take(8, &cursor, block)
                fileLinkType = Self.dlt(linkType: load16(fixed))
                fileSnapshot = Self.adjustedSnapshot(fileLinkType, load32(fixed + 4))
                maximumBlock = max(maximumBlock, 8 + 20 + Self.maximumSnapshot(fileLinkType) + 131_072 + 4)
                try addInterface(block, fixed: fixed, cursor: cursor)
                return
            case Self.enhancedPacket, Self.simplePacket, Self.packetBlock:
                throw Failure(message: "a packet before any interface")
            default:
                continue
            }
        }
    }

    // MARK: - Reading

    @inline(__always)
    private func load32(_ at: Int) -> UInt32 {
        let v = base.loadUnaligned(fromByteOffset: at, as: UInt32.self)
        return swapped ? v.byteSwapped : v
    }

    @inline(__always)
    private func load16(_ at: Int) -> UInt16 {
        let v = base.loadUnaligned(fromByteOffset: at, as: UInt16.self)
        return swapped ? v.byteSwapped : v
    }

    private static func truncated(_ wanted: Int, _ got: Int) -> Failure {
        Failure(message: "truncated pcapng dump file; tried to read \(wanted) bytes, only got \(got)")
    }

    /// libpcap's `read_block`: nil at the end of the file. A Section Header Block whose
    /// byte-order field is the other order's starts a section in that order (libpcap reads
    /// its length in the old order and fails).
    private mutating func readBlock(opening: Bool = false) throws(Failure) -> Block? {
        let remaining = limit &- offset
        if remaining == 0 { return nil }
        guard remaining >= 8 else { throw Self.truncated(8, remaining) }
        let start = offset
        let type = load32(start)
        var order = swapped
        if !opening, type == Self.sectionHeader, remaining >= 12,
           base.loadUnaligned(fromByteOffset: start + 8, as: UInt32.self) == (swapped ? Self.byteOrderMagic : Self.byteOrderMagic.byteSwapped) {
            order.toggle()
        }
        var length = base.loadUnaligned(fromByteOffset: start + 4, as: UInt32.self)
        if order { length = length.byteSwapped }
        guard length >= 12 else { throw Failure(message: "block in pcapng dump file has a length of \(length) < 12") }
        guard length % 4 == 0 else {
            throw Failure(message: "block in pcapng dump file has a length of \(length) that is not a multiple of 4")
        }
        guard length <= maximumBlock else { throw Failure(message: "pcapng block size \(length) > maximum \(maximumBlock)") }
        let rest = Int(length) &- 8
        guard remaining &- 8 >= rest else { throw Self.truncated(rest, remaining &- 8) }
        var trailer = base.loadUnaligned(fromByteOffset: start + Int(length) - 4, as: UInt32.self)
        if order { trailer = trailer.byteSwapped }
        // libpcap 1.10's words, without the two lengths (later versions give them).
        guard trailer == length else { throw Failure(message: "block total length in header and trailer don't match") }
        offset = start &+ Int(length)
        return Block(type: type, start: start, body: start &+ 8, bodyEnd: offset &- 4, swapped: order)
    }

    /// libpcap's `get_from_block_data`: the offset of the next `count` bytes of the block.
    @inline(__always)
    private func take(_ count: Int, _ cursor: inout Int, _ block: Block) throws(Failure) -> Int {
        guard block.bodyEnd &- cursor >= count else {
            throw Failure(message: "block of type \(block.type) in pcapng dump file is too short")
        }
        defer { cursor &+= count }
        return cursor
    }

    mutating func next() -> Next {
        if failed { return .end }
        while true {
            let block: Block
            do throws(Failure) {
                guard let b = try readBlock() else {
                    switch sizeChanged() {
                    case .grown?: continue
                    case .shrunk?: return fail(MappedRecords.shrunk)
                    case nil: return .end
                    }
                }
                block = b
            } catch {
                switch sizeChanged() {
                case .grown?: continue
                case .shrunk?: return fail(MappedRecords.shrunk)
                case nil: return fail(error.message)
                }
            }
            if offset &- released >= 2 &* Self.releaseStep { release(before: block.start) }
            do throws(Failure) {
                // A packet libpcap handed out before this reader took over is not handed out again.
                if let record = try process(block), offset > quietUntil {
                    return .record(record)
                }
            } catch {
                return fail(error.message)
            }
        }
    }

    /// One block: a packet, or nil for the blocks that only change the reader's state.
    @inline(__always)
    private mutating func process(_ block: Block) throws(Failure) -> Record? {
        var cursor = block.body
        switch block.type {
        case Self.enhancedPacket:
            let fixed = try take(20, &cursor, block)
            let stamp = UInt64(load32(fixed + 4)) << 32 | UInt64(load32(fixed + 8))
            return try packet(block, &cursor, id: load32(fixed), stamp: stamp,
                              captured: load32(fixed + 12), wire: load32(fixed + 16))
        case Self.simplePacket:
            let fixed = try take(4, &cursor, block)
            let wire = load32(fixed)
            let snapshot = interfaces.count > sectionStart ? interfaces[sectionStart].snapshot : fileSnapshot
            return try packet(block, &cursor, id: 0, stamp: 0, captured: min(wire, snapshot), wire: wire)
        case Self.packetBlock:
            let fixed = try take(20, &cursor, block)
            let stamp = UInt64(load32(fixed + 4)) << 32 | UInt64(load32(fixed + 8))
            return try packet(block, &cursor, id: UInt32(load16(fixed)), stamp: stamp,
                              captured: load32(fixed + 12), wire: load32(fixed + 16))
        case Self.interfaceDescription:
            let fixed = try take(8, &cursor, block)
            let raw = load16(fixed)
            // libpcap compares the raw LINKTYPE with the first interface's DLT.
            if Int32(raw) != fileLinkType || Self.adjustedSnapshot(fileLinkType, load32(fixed + 4)) != fileSnapshot {
                if libpcapStop == nil { libpcapStop = block.start }
            }
            try addInterface(block, fixed: fixed, cursor: cursor)
            return nil
        case Self.sectionHeader:
            swapped = block.swapped
            let fixed = try take(16, &cursor, block)
            guard load32(fixed) == Self.byteOrderMagic else {
                throw Failure(message: "the file has a section with a bad byte order magic field")
            }
            guard load16(fixed + 4) == 1 else {
                throw Failure(message: "unknown pcapng savefile major version number \(load16(fixed + 4))")
            }
            if swapped != firstSwapped, libpcapStop == nil { libpcapStop = block.start }
            sectionStart = interfaces.count
            return nil
        default:
            return nil
        }
    }

    /// libpcap's checks of a packet on its interface, its time stamp conversion, and the
    /// packet's bytes.
    @inline(__always)
    private func packet(_ block: Block, _ cursor: inout Int, id: UInt32, stamp: UInt64,
                        captured: UInt32, wire: UInt32) throws(Failure) -> Record {
        guard Int(id) < interfaces.count &- sectionStart else {
            throw Failure(message: "a packet arrived on interface \(id), but there's no Interface Description Block for that interface")
        }
        let number = sectionStart &+ Int(id)
        let interface = interfaces[number]
        guard captured <= interface.snapshot else {
            throw Failure(message: "invalid packet capture length \(captured), bigger than snaplen of \(interface.snapshot)")
        }
        let (seconds, fraction) = interface.time(stamp)
        let data = try take(Int(captured), &cursor, block)
        return Record(bytes: UnsafeRawBufferPointer(start: base + data, count: Int(captured)),
                      wireLength: wire,
                      seconds: seconds,
                      nanoseconds: fraction,
                      linkType: Int32(interface.linkType),
                      interface: Int32(truncatingIfNeeded: number))
    }

    /// libpcap's `add_interface` and `process_idb_options`, and the if_name option.
    private mutating func addInterface(_ block: Block, fixed: Int, cursor start: Int) throws(Failure) {
        guard interfaces.count < Self.maximumInterfaces else {
            throw Failure(message: "more than \(Self.maximumInterfaces) interfaces in the file (smtpcap's limit)")
        }
        let linkType = Self.dlt(linkType: load16(fixed))
        var interface = Interface(resolution: 1_000_000, factor: 1_000, offset: 0,
                                  snapshot: Self.adjustedSnapshot(linkType, load32(fixed + 4)),
                                  nameStart: 0, linkType: UInt16(truncatingIfNeeded: linkType), nameLength: 0, scale: .upDecimal)
        var cursor = start
        var binary = false, sawResolution = false, sawOffset = false, sawName = false
        options: while cursor != block.bodyEnd {
            let header = try take(4, &cursor, block)
            let code = load16(header), length = load16(header + 2)
            let value = try take((Int(length) + 3) & ~3, &cursor, block)
            switch code {
            case 0:
                guard length == 0 else {
                    throw Failure(message: "Interface Description Block has opt_endofopt option with length \(length) != 0")
                }
                break options
            case 2 where !sawName:
                sawName = true
                var count = min(Int(length), Self.maximumNameLength)
                while count > 0, base.load(fromByteOffset: value + count - 1, as: UInt8.self) == 0 { count -= 1 }
                if count > 0, names.count + count <= Self.maximumNameBytes {
                    interface.nameStart = UInt32(names.count)
                    interface.nameLength = UInt16(count)
                    names.append(contentsOf: UnsafeRawBufferPointer(start: base + value, count: count))
                }
            case 9:
                guard length == 1 else {
                    throw Failure(message: "Interface Description Block has if_tsresol option with length \(length) != 1")
                }
                guard !sawResolution else {
                    throw Failure(message: "Interface Description Block has more than one if_tsresol option")
                }
                sawResolution = true
                let code = base.load(fromByteOffset: value, as: UInt8.self)
                if code & 0x80 != 0 {
                    let shift = code & 0x7f
                    guard shift <= 63 else {
                        throw Failure(message: "Interface Description Block if_tsresol option resolution 2^-\(shift) is too high")
                    }
                    binary = true
                    interface.resolution = 1 << UInt64(shift)
                } else {
                    guard code <= 19 else {
                        throw Failure(message: "Interface Description Block if_tsresol option resolution 10^-\(code) is too high")
                    }
                    binary = false
                    interface.resolution = (0..<code).reduce(UInt64(1)) { r, _ in r &* 10 }
                }
            case 14:
                guard length == 8 else {
                    throw Failure(message: "Interface Description Block has if_tsoffset option with length \(length) != 8")
                }
                guard !sawOffset else {
                    throw Failure(message: "Interface Description Block has more than one if_tsoffset option")
                }
                sawOffset = true
                let raw = base.loadUnaligned(fromByteOffset: value, as: Int64.self)
                interface.offset = swapped ? raw.byteSwapped : raw
            default:
                continue
            }
        }
        interface.chooseScale(binary: binary)
        interfaces.append(interface)
    }


    /// The if_name of interface `number` (counted over the file), if it had one.
    func interfaceName(_ number: Int) -> String? {
        guard number >= 0, number < interfaces.count else { return nil }
        let i = interfaces[number]
        guard i.nameLength > 0 else { return nil }
        let start = Int(i.nameStart)
        return String(decoding: names[start..<(start + Int(i.nameLength))], as: UTF8.self)
    }

    // MARK: - The file under the mapping

    private mutating func fail(_ message: String) -> Next {
        failed = true
        return .error(message)
    }

    enum SizeChange { case grown, shrunk }

    /// At the end of the mapping or a block that does not fit in it: grown (still being
    /// written), the file is mapped again at its new size and read on; shrunk (truncated or
    /// rewritten in place), an error rather than the zeros a mapping shows past the new end.
    private mutating func sizeChanged() -> SizeChange? {
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        if st.st_size < Int64(size) { return .shrunk }
        guard st.st_size > Int64(size), let length = Int(exactly: st.st_size),
              let mapping = Self.map(fd: fd, length: length, name: name) else { return nil }
        unmap()
        base = mapping.start
        slot = mapping.slot
        size = length
        limit = length
        released = 0
        return .grown
    }

    /// Gives back the pages more than `releaseStep` behind the reader, never those of the
    /// block being handed out.
    private mutating func release(before blockStart: Int) {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let end = min(offset &- Self.releaseStep, blockStart) & ~(page &- 1)
        guard end > released else { return }
        _ = madvise(UnsafeMutableRawPointer(mutating: base + released), end &- released, MADV_DONTNEED)
        released = end
        var st = stat()
        if fstat(fd, &st) == 0, st.st_size < Int64(limit) { limit = max(offset, Int(st.st_size)) }
    }
}
