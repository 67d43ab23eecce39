import Foundation
import PcapSource
import SMTPCapTestSupport
import Testing

/// The mapped reader against libpcap's own: every packet the same (bytes, lengths, time
/// stamps), the same end, the same error text on damaged records.
@Suite("Mapped file reader")
struct MappedReaderTests {
    static let captures = TestPaths.captures
    static let peerCaptures = TestPaths.peerCaptures

    struct Packet: Equatable {
        var bytes: [UInt8]
        var wireLength: Int
        var seconds: Int64
        var nanoseconds: Int32
    }

    /// Everything a reader gives for one file: its packets, then how it ended.
    struct Reading: Equatable {
        var packets: [Packet] = []
        var end = ""
        var mapped = false
    }

    static func read(_ path: String, _ reader: PcapSource.FileReader, filter: String? = nil, dump: String? = nil) throws -> Reading {
        let source = try PcapSource.openOffline(path, reader: reader)
        if let filter { try source.setFilter(filter) }
        if let dump { try source.openDump(dump) }
        var out = Reading(mapped: source.readsMapping)
        loop: while true {
            switch source.next() {
            case .packet(let p):
                out.packets.append(Packet(bytes: Array(p.bytes), wireLength: p.wireLength, seconds: p.seconds, nanoseconds: p.nanoseconds))
            case .timeout: out.end = "timeout"; break loop
            case .end: out.end = "end"; break loop
            case .error(let message): out.end = "error: \(message)"; break loop
            }
        }
        source.flushDump()
        return out
    }

    /// Reads with both; says whether the mapped reader took the file.
    @discardableResult
    static func expectSame(_ path: String, filter: String? = nil, _ comment: Comment? = nil) throws -> Bool {
        let libpcap = try read(path, .libpcap, filter: filter)
        let mapped = try read(path, .automatic, filter: filter)
        #expect(!libpcap.mapped)
        let label = "\(path) \(comment.map { "\($0)" } ?? "")"
        #expect(mapped.packets.count == libpcap.packets.count, "\(label)")
        // The first packet that differs, not two whole captures in the failure message.
        if let i = mapped.packets.indices.first(where: { $0 < libpcap.packets.count && mapped.packets[$0] != libpcap.packets[$0] }) {
            let (m, l) = (mapped.packets[i], libpcap.packets[i])
            Issue.record("\(label): packet \(i + 1) differs: \(m.bytes.count) bytes, wire \(m.wireLength), \(m.seconds).\(m.nanoseconds) against \(l.bytes.count) bytes, wire \(l.wireLength), \(l.seconds).\(l.nanoseconds)\(m.bytes == l.bytes ? "" : ", other bytes")")
        }
        #expect(mapped.end == libpcap.end, "\(label)")
        return mapped.mapped
    }

    static func files(in dir: URL) -> [String] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { $0.hasSuffix(".pcap") || $0.hasSuffix(".pcapng") }.sorted().map { dir.appendingPathComponent($0).path }
    }

    @Test func corpusCapturesReadTheSame() throws {
        let files = Self.files(in: Self.captures)
        #expect(files.count >= 20)
        var mapped = 0
        for path in files {
            let took = try Self.expectSame(path)
            // Every file of the corpus is one a mapped reader takes (pcapng: PcapngRecords).
            #expect(took, "\(path)")
            if took { mapped += 1 }
        }
        #expect(mapped >= 21)
    }

    @Test(.enabled(if: FileManager.default.fileExists(atPath: peerCaptures.path), "../shared/peer-captures is absent"))
    func peerCapturesReadTheSame() throws {
        let files = Self.files(in: Self.peerCaptures)
        #expect(!files.isEmpty)
        var mapped = 0
        for path in files where try Self.expectSame(path) { mapped += 1 }
        // Most peer files are plain pcap: the comparison must have exercised the mapping.
        #expect(mapped * 2 > files.count, "\(mapped) of \(files.count) read through the mapping")
    }

    @Test func filtersSelectTheSamePackets() throws {
        let path = Self.captures.appendingPathComponent("stripped-ipv4-intact-ipv6.pcap").path
        for filter in ["ip6", "tcp port 25 and ip", "tcp[tcpflags] & tcp-syn != 0", "udp"] {
            #expect(try Self.expectSame(path, filter: filter, "filter \(filter)"), "the mapped reader took the file with \(filter)")
        }
        #expect(try Self.read(path, .automatic, filter: "ip6").packets.count > 0)
        #expect(try Self.read(path, .automatic, filter: "udp").packets.isEmpty)
    }

    @Test func dumpFilesAreTheSame() throws {
        let path = Self.captures.appendingPathComponent("default.pcap").path
        let a = Self.temp("a.pcap"), b = Self.temp("b.pcap")
        defer { unlink(a); unlink(b) }
        _ = try Self.read(path, .libpcap, filter: "tcp port 25", dump: a)
        _ = try Self.read(path, .automatic, filter: "tcp port 25", dump: b)
        let written = try Data(contentsOf: URL(fileURLWithPath: b))
        #expect(written.count > 24)
        #expect(written == (try Data(contentsOf: URL(fileURLWithPath: a))))
    }

    static func temp(_ name: String) -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-reader-\(UUID().uuidString)-\(name)").path
    }

    // MARK: - Crafted files

    struct File {
        var bytes: [UInt8]

        static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

        init(magic: UInt32 = 0xa1b2_c3d4, major: UInt16 = 2, minor: UInt16 = 4, snaplen: UInt32 = 65_535, linktype: UInt32 = 1) {
            bytes = Self.le32(magic) + Self.le16(major) + Self.le16(minor) + Self.le32(0) + Self.le32(0) + Self.le32(snaplen) + Self.le32(linktype)
        }

        /// A record header saying `captured`/`wire`, then `present` bytes of data.
        mutating func record(seconds: UInt32 = 1_767_225_600, subsecond: UInt32 = 123_456, captured: UInt32, wire: UInt32? = nil, present: Int? = nil) {
            bytes += Self.le32(seconds) + Self.le32(subsecond) + Self.le32(captured) + Self.le32(wire ?? captured)
            bytes += (0..<(present ?? Int(captured))).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        }

        func write() throws -> String {
            let path = MappedReaderTests.temp("crafted.pcap")
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            return path
        }
    }

    static func expectSame(_ file: File, mapped: Bool = true, _ comment: Comment) throws {
        let path = try file.write()
        defer { unlink(path) }
        let took = try expectSame(path, comment)
        #expect(took == mapped, comment)
    }

    @Test func damagedRecordsEndWithLibpcapsErrors() throws {
        var good = File()
        good.record(captured: 60)
        good.record(captured: 0)
        good.record(captured: 1514, wire: 1514)
        good.record(captured: 80, wire: 1514)
        try Self.expectSame(good, "well-formed records")

        for cut in [1, 8, 15, 16, 17, 50] {
            var f = good
            f.bytes.removeLast(cut)
            try Self.expectSame(f, "cut by \(cut)")
        }
        // Each case: the file's snapshot length, then records as (captured length, bytes
        // present in the file; nil: all of them).
        let cases: [(snaplen: UInt32, records: [(UInt32, Int?)], label: String)] = [
            // Longer than the file's snapshot length but sane: cut to the snapshot, rest skipped.
            (100, [(300, nil), (60, nil)], "record over the snapshot length"),
            (100, [(300, 50)], "over the snapshot length, cut before it"),
            (100, [(300, 200)], "over the snapshot length, cut after it"),
            // Past libpcap's sanity limit.
            (0, [(60, nil), (262_145, 10)], "record past 262144"),
            (100, [(0xffff_ffff, 10)], "record of 2^32-1"),
            // A snapshot length past the sanity limit is kept as it is (found by the pcap fuzz
            // harness): the limit still applies to each record.
            (9_569_280, [(60, nil), (4_653_136, 1_199)], "record past 262144, under the file's snapshot length"),
            (9_569_280, [(200_000, nil)], "a large record under both limits"),
        ]
        for c in cases {
            var file = File(snaplen: c.snaplen)
            for (captured, present) in c.records { file.record(captured: captured, present: present) }
            try Self.expectSame(file, "\(c.label)")
        }
        // A header of nothing but its own 24 bytes.
        try Self.expectSame(File(), "no records")
    }

    @Test func timeStampsConvertAsLibpcapDoes() throws {
        var micro = File()
        micro.record(seconds: 0, subsecond: 0, captured: 20)
        micro.record(seconds: 0xffff_ffff, subsecond: 999_999, captured: 20)   // before 1970 as libpcap reads it
        micro.record(seconds: 0x8000_0000, subsecond: 5_000_000, captured: 20) // sub-second field past a second
        micro.record(seconds: 12, subsecond: 0xffff_ffff, captured: 20)
        try Self.expectSame(micro, "microsecond file")
        var nano = File(magic: 0xa1b2_3c4d)
        nano.record(seconds: 1_767_225_600, subsecond: 999_999_999, captured: 20)
        nano.record(seconds: 7, subsecond: 0xffff_ffff, captured: 20)
        try Self.expectSame(nano, "nanosecond file")
        let path = try nano.write()
        defer { unlink(path) }
        #expect(try Self.read(path, .automatic).packets.first?.nanoseconds == 999_999_999)
    }

    @Test func otherFormatsStayWithLibpcap() throws {
        // Byte-swapped, an older version, the modified format's magic, a link type smtpcap
        // does not decode: libpcap reads them all, the mapped reader none.
        var swapped = File(magic: 0xd4c3_b2a1)
        swapped.bytes.replaceSubrange(4..<8, with: [0, 2, 0, 4])
        swapped.bytes.replaceSubrange(16..<24, with: [0, 0, 0xff, 0xff, 0, 0, 0, 1])
        swapped.bytes += [0x69, 0x5a, 0x6f, 0x00, 0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 20] + [UInt8](repeating: 9, count: 20)
        try Self.expectSame(swapped, mapped: false, "byte-swapped file")
        var old = File(minor: 3)
        old.record(captured: 20, wire: 10)
        try Self.expectSame(old, mapped: false, "version 2.3")
        var usb = File(linktype: 189)
        usb.record(captured: 48)
        try Self.expectSame(usb, mapped: false, "USB link type")
    }

    /// Reads `count` packets (or to the end), returning their lengths and how it ended.
    static func take(_ source: PcapSource, _ count: Int = .max) -> (lengths: [Int], end: String) {
        var lengths: [Int] = []
        while lengths.count < count {
            switch source.next() {
            case .packet(let p): lengths.append(p.bytes.count)
            case .timeout: return (lengths, "timeout")
            case .end: return (lengths, "end")
            case .error(let message): return (lengths, "error: \(message)")
            }
        }
        return (lengths, "")
    }

    @Test func aFileThatGrowsIsReadOnThroughLibpcap() throws {
        // A capture still being written (tcpdump -w): what is there when the mapping ends is
        // read on by libpcap, as libpcap alone would have read it; a filter goes along.
        var file = File()
        for length: UInt32 in [40, 80, 40, 80] { file.record(captured: length) }
        let path = try file.write()
        defer { unlink(path) }
        let source = try PcapSource.openOffline(path)
        try source.setFilter("greater 60")
        #expect(source.readsMapping)
        let first = Self.take(source, 1)
        #expect(first.lengths == [80])
        var more = File()
        for length: UInt32 in [40, 90, 100, 30] { more.record(captured: length) }
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(more.bytes.dropFirst(24)))
        try handle.close()
        let rest = Self.take(source)
        #expect(rest.lengths == [80, 90, 100])
        #expect(rest.end == "end")
        #expect(!source.readsMapping)
        // The whole grown file, read by libpcap alone, gives the same.
        #expect(try Self.read(path, .libpcap, filter: "greater 60").packets.map(\.bytes.count) == [80, 80, 90, 100])
    }

    @Test func aFileCutWithinItsLastPageIsAnError() throws {
        // Cut inside the mapped page: no SIGBUS there (the rest of the page reads as zeros),
        // so the reader checks the size where the mapping ends.
        var file = File()
        for _ in 0..<6 { file.record(captured: 100) }
        let path = try file.write()
        defer { unlink(path) }
        let source = try PcapSource.openOffline(path)
        #expect(source.readsMapping)
        #expect(Self.take(source, 1).lengths == [100])
        #expect(truncate(path, 24 + 2 * 116 + 50) == 0)
        let rest = Self.take(source)
        #expect(rest.end == "error: the file became shorter while it was being read")
        // The second record, and the third with its cut part read as zeros; then the
        // zeros where the fourth record's header was are checked, not taken as a record.
        #expect(rest.lengths == [100, 100])
    }

    @Test func aFileCutFarAheadIsReadUpToTheCut() throws {
        // Cut well ahead of the reader: the size checked once a MiB moves the end of the
        // records to the cut (no page past it is touched, so no SIGBUS), and what lies before
        // the cut is read, as libpcap would; then the shrink is reported.
        var big = File()
        let record = File.le32(1) + File.le32(0) + File.le32(1500) + File.le32(1500) + [UInt8](repeating: 0x55, count: 1500)
        for _ in 0..<27_000 { big.bytes += record }
        let path = try big.write()
        defer { unlink(path) }
        let source = try PcapSource.openOffline(path)
        #expect(source.readsMapping)
        #expect(Self.take(source, 3_000).lengths.count == 3_000)
        #expect(truncate(path, off_t(24 + 13_000 * record.count + 700)) == 0)
        let rest = Self.take(source)
        #expect(rest.lengths.count == 10_000)
        #expect(rest.end == "error: the file became shorter while it was being read")
    }

    @Test func pagesBehindTheReaderAreGivenBack() throws {
        // 40 MB of records: the mapping must not stay resident behind the reader.
        var big = File()
        let record = File.le32(1) + File.le32(0) + File.le32(1500) + File.le32(1500) + [UInt8](repeating: 0x55, count: 1500)
        big.bytes.reserveCapacity(24 + record.count * 27_000)
        for _ in 0..<27_000 { big.bytes += record }
        let path = try big.write()
        defer { unlink(path) }
        let source = try PcapSource.openOffline(path)
        #expect(source.readsMapping)
        var count = 0, sum = 0
        while case .packet(let p) = source.next() {
            count += 1
            sum &+= Int(p.bytes[p.bytes.count - 1])
        }
        #expect(count == 27_000)
        #expect(sum == 27_000 * 0x55)
        // Resident pages of the mapping, from the kernel's own account of it.
        let name = URL(fileURLWithPath: path).lastPathComponent
        var resident: Int?
        var inMapping = false
        let smaps = try #require(fopen("/proc/self/smaps", "r"))
        defer { fclose(smaps) }
        var line: UnsafeMutablePointer<CChar>?
        var capacity = 0
        while getline(&line, &capacity, smaps) > 0, let text = line.map({ String(cString: $0) }) {
            let fields = text.split(separator: " ", omittingEmptySubsequences: true)
            if let range = fields.first, range.contains("-"), range.allSatisfy({ $0.isHexDigit || $0 == "-" }) {
                inMapping = text.hasSuffix(name + "\n")
            } else if inMapping, fields.first == "Rss:", fields.count > 1 {
                resident = Int(fields[1])
            }
        }
        free(line)
        let kib = try #require(resident, "the mapping is listed in /proc/self/smaps")
        #expect(kib <= 4 * 1024, "\(kib) KiB of a 40 MB mapping still resident")
    }
}
