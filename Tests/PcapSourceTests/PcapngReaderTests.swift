import Foundation
@_spi(Testing) import PcapSource
import SMTPCapTestSupport
import Testing

/// smtpcap's own pcapng reader against libpcap's: on every file libpcap reads, the same
/// packets (bytes, lengths, seconds, nanoseconds) and the same end or error text; where
/// libpcap stops (interfaces of several link types or snapshot lengths, sections of both
/// byte orders), libpcap's packets first and then the rest, each with its interface's link
/// type.
@Suite("pcapng reader")
struct PcapngReaderTests {
    typealias Packet = MappedReaderTests.Packet

    struct Reading {
        var packets: [Packet] = []
        /// (link type, interface) of each packet.
        var origins: [[Int32]] = []
        var end = ""
        var mapped = false
        var stop: Int?
        var source: PcapSource?
    }

    static func read(_ path: String, _ reader: PcapSource.FileReader, pure: Bool = false, filter: String? = nil,
                     dump: String? = nil) throws -> Reading {
        let source = try PcapSource.openOffline(path, reader: reader)
        if pure { source.keepToLibpcap() }
        if let filter { try source.setFilter(filter) }
        if let dump { try source.openDump(dump) }
        var out = Reading(mapped: source.readsMapping, source: source)
        loop: while true {
            switch source.next() {
            case .packet(let p):
                out.packets.append(Packet(bytes: Array(p.bytes), wireLength: p.wireLength, seconds: p.seconds, nanoseconds: p.nanoseconds))
                out.origins.append([p.linkType, p.interface])
            case .timeout: out.end = "timeout"; break loop
            case .end: out.end = "end"; break loop
            case .error(let message): out.end = "error: \(message)"; break loop
            }
        }
        out.mapped = out.mapped || source.readsMapping
        out.stop = source.libpcapWouldStopAt
        source.flushDump()
        return out
    }

    /// libpcap alone, then smtpcap's reader: the same packets and end; or, past a point where
    /// libpcap stops and this reader reads on, libpcap's packets as the first ones.
    @discardableResult
    static func expectSame(_ path: String, _ label: String, mapped: Bool = true) throws -> Reading {
        let libpcap: Reading
        do {
            libpcap = try read(path, .libpcap, pure: true)
        } catch {
            // libpcap cannot open it: neither can smtpcap.
            #expect(throws: PcapError.self, "\(label)") { try read(path, .automatic) }
            return Reading(end: "open: \(error)")
        }
        let ours = try read(path, .automatic)
        #expect(ours.mapped == mapped, "\(label): read through the mapping")
        if ours.stop == nil {
            #expect(ours.packets.count == libpcap.packets.count, "\(label)")
            #expect(ours.end == libpcap.end, "\(label)")
        } else {
            #expect(libpcap.end.hasPrefix("error: "), "\(label): libpcap stops where smtpcap reads on")
            #expect(ours.packets.count >= libpcap.packets.count, "\(label)")
        }
        if let i = libpcap.packets.indices.first(where: { $0 >= ours.packets.count || ours.packets[$0] != libpcap.packets[$0] }), i < ours.packets.count {
            let (m, l) = (ours.packets[i], libpcap.packets[i])
            Issue.record("\(label): packet \(i + 1) differs: \(m.bytes.count) bytes, wire \(m.wireLength), \(m.seconds).\(m.nanoseconds) against \(l.bytes.count) bytes, wire \(l.wireLength), \(l.seconds).\(l.nanoseconds)")
        }
        return ours
    }

    @discardableResult
    static func expectSame(_ file: Pcapng, _ label: String, mapped: Bool = true) throws -> Reading {
        let path = try file.write()
        defer { unlink(path) }
        return try expectSame(path, label, mapped: mapped)
    }

    static func temp(_ name: String) -> String { MappedReaderTests.temp(name) }

    static func tool(_ name: String, _ arguments: [String]) throws -> String {
        let program = try #require(E2E.which(name), "\(name) is installed (make test-deps)")
        let result = try E2E.runProgram(program, arguments)
        #expect(result.status == 0, "\(name) \(arguments): \(result.stderr)")
        return result.stdout
    }

    static let classicCaptures = MappedReaderTests.files(in: TestPaths.captures).filter { $0.hasSuffix(".pcap") }

    // MARK: - Real files

    @Test func corpusPcapngFilesReadLikeLibpcap() throws {
        var files = MappedReaderTests.files(in: TestPaths.captures).filter { $0.hasSuffix(".pcapng") }
        #expect(!files.isEmpty)
        files += MappedReaderTests.files(in: TestPaths.peerCaptures).filter { $0.hasSuffix(".pcapng") }
        for path in files {
            let r = try Self.expectSame(path, path)
            #expect(!r.packets.isEmpty, "\(path)")
        }
    }

    @Test func editcapConversionsReadLikeLibpcap() throws {
        #expect(Self.classicCaptures.count >= 20)
        for path in Self.classicCaptures {
            let out = Self.temp("editcap.pcapng")
            defer { unlink(out) }
            _ = try Self.tool("editcap", ["-F", "pcapng", path, out])
            let r = try Self.expectSame(out, "editcap -F pcapng \(path)")
            // The same packets as the classic file itself.
            #expect(r.packets == (try MappedReaderTests.read(path, .libpcap).packets), "\(path)")
        }
    }

    /// Each classic capture rewritten as pcapng in both byte orders and several time stamp
    /// resolutions, with EPBs, and with the obsolete Packet Blocks.
    static let rewrites: [(bigEndian: Bool, resolution: UInt8)] = [
        (false, 6), (true, 6), (true, 9), (false, 9), (true, 3), (false, 0x80 | 30), (true, 0x80 | 20), (false, 0),
    ]

    @Test(arguments: 0..<8)
    func rewrittenCapturesReadLikeLibpcap(variant: Int) throws {
        let (bigEndian, resolution) = Self.rewrites[variant]
        for path in Self.classicCaptures.prefix(12) {
            let classic = try MappedReaderTests.read(path, .libpcap)
            let source = try PcapSource.openOffline(path, reader: .libpcap)
            for obsolete in [false, true] {
                var f = Pcapng(bigEndian: bigEndian)
                f.section()
                f.interface(linkType: UInt16(source.datalink), snaplen: 65_535, options: [(9, [resolution])])
                for p in classic.packets {
                    let stamp = Pcapng.stamp(seconds: p.seconds, nanoseconds: p.nanoseconds, resolution: resolution)
                    if obsolete {
                        f.obsolete(interface: 0, stamp: stamp, data: p.bytes, wire: UInt32(p.wireLength))
                    } else {
                        f.enhanced(stamp: stamp, data: p.bytes, wire: UInt32(p.wireLength))
                    }
                }
                try Self.expectSame(f, "\(path) big-endian \(bigEndian) resolution \(resolution) obsolete \(obsolete)")
            }
        }
    }

    // MARK: - Crafted files

    @Test func timeStampsConvertAsLibpcapDoes() throws {
        let stamps: [UInt64] = [0, 1, 999_999, 1_000_000, 1_767_225_600_123_456, UInt64(UInt32.max), 1 << 32, 1 << 63, .max, .max - 1]
        var resolutions: [UInt8] = Array(0...19)
        resolutions += (0...63).map { 0x80 | $0 }
        for bigEndian in [false, true] {
            for resolution in resolutions {
                for offset: Int64 in [0, 1_700_000_000, -5, .min] {
                    var f = Pcapng(bigEndian: bigEndian)
                    f.section()
                    var options: [(UInt16, [UInt8])] = [(9, [resolution])]
                    if offset != 0 { options.append((14, f.u64(UInt64(bitPattern: offset)))) }
                    f.interface(options: options)
                    for s in stamps { f.enhanced(stamp: s, data: [1, 2, 3]) }
                    let r = try Self.expectSame(f, "resolution \(resolution) offset \(offset) big-endian \(bigEndian)")
                    #expect(r.packets.count == stamps.count)
                }
            }
        }
    }

    /// A file with a bit of everything: options, names, unknown blocks, simple and obsolete
    /// packet blocks, a second section.
    static func everything(bigEndian: Bool = false) -> Pcapng {
        var f = Pcapng(bigEndian: bigEndian)
        f.section(options: [(4, Array("Linux".utf8))])
        f.block(0x0000_0BAD, Array(repeating: 7, count: 10))  // custom block
        f.interface(snaplen: 100, options: [(2, Array("eth0".utf8)), (9, [9]), (1, Array("a comment".utf8))])
        f.interface(snaplen: 100, options: [(2, Array("eth1".utf8)), (14, f.u64(1000))])
        f.enhanced(stamp: 1_767_225_600_000_000_001, data: Array(repeating: 0xaa, count: 60), wire: 60)
        f.simple(wire: 150, data: Array(repeating: 0xbb, count: 100))
        f.enhanced(interface: 1, stamp: 12_345_678, data: Array(repeating: 0xcc, count: 33), wire: 1500)
        f.block(5, Array(repeating: 0, count: 12))  // interface statistics
        f.obsolete(interface: 1, stamp: 99, data: [1, 2, 3, 4, 5], wire: 5)
        f.section()
        f.interface(snaplen: 100)
        f.simple(wire: 20, data: Array(repeating: 0xdd, count: 20))
        f.enhanced(stamp: 5, data: [9, 9])
        return f
    }

    @Test func everyTruncationEndsWithLibpcapsError() throws {
        for bigEndian in [false, true] {
            let good = Self.everything(bigEndian: bigEndian)
            let whole = try Self.expectSame(good, "whole, big-endian \(bigEndian)")
            #expect(whole.packets.count == 6)
            #expect(whole.origins.map { $0[1] } == [0, 0, 1, 1, 2, 2])
            // Every length past the first section header's: block boundaries and every byte
            // inside the blocks.
            for cut in 29..<good.bytes.count {
                var f = good
                f.bytes.removeLast(good.bytes.count - cut)
                try Self.expectSame(f, "cut at \(cut) of \(good.bytes.count), big-endian \(bigEndian)")
            }
        }
        // A real capture converted by editcap, cut at each block boundary and around it.
        let out = Self.temp("cut.pcapng")
        defer { unlink(out) }
        _ = try Self.tool("editcap", ["-F", "pcapng", TestPaths.captures.appendingPathComponent("default.pcap").path, out])
        let bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: out)))
        for boundary in Pcapng.boundaries(bytes) {
            for cut in [boundary - 1, boundary, boundary + 1, boundary + 4, boundary + 8, boundary + 20] where cut > 28 && cut < bytes.count {
                let f = Pcapng(bytes: Array(bytes.prefix(cut)))
                _ = try Self.expectSame(f, "editcap file cut at \(cut)")
            }
        }
    }

    /// Damaged lengths, identifiers and options, each where libpcap reads it: after the first
    /// interface (damage before it is libpcap's open, which fails for both readers).
    @Test(arguments: [false, true])
    func damagedBlocksEndWithLibpcapsErrors(bigEndian: Bool) throws {
        typealias Damage = (label: String, build: (inout Pcapng) -> Void)
        let cases: [Damage] = [
            ("length 0", { $0.block(6, [], length: 0) }),
            ("length 8", { $0.block(6, [], length: 8) }),
            ("length 13", { $0.block(6, [1, 2, 3, 4], length: 13) }),
            ("length past the file", { $0.block(6, Array(repeating: 0, count: 40), length: 400) }),
            ("length past the maximum", { $0.block(6, Array(repeating: 0, count: 40), length: 0x7fff_fff0) }),
            ("16 MiB and 4", { $0.block(6, Array(repeating: 0, count: 40), length: (16 << 20) + 4) }),
            ("trailer differs", { $0.block(6, Array(repeating: 0, count: 40), trailer: 56) }),
            ("EPB too short", { $0.block(6, Array(repeating: 0, count: 16)) }),
            ("EPB data past the block", { $0.enhanced(stamp: 1, data: [1, 2, 3, 4], captured: 40) }),
            ("EPB over the snapshot", { $0.enhanced(stamp: 1, data: Array(repeating: 1, count: 120)) }),
            ("unknown interface", { $0.enhanced(interface: 7, stamp: 1, data: [1]) }),
            ("interface 2^32-1", { $0.enhanced(interface: .max, stamp: 1, data: [1]) }),
            ("SPB too short", { $0.block(3, []) }),
            ("SPB data past the block", { $0.block(3, $0.u32(80) + [1, 2, 3, 4]) }),
            ("PB too short", { $0.block(2, Array(repeating: 0, count: 8)) }),
            ("PB unknown interface", { $0.obsolete(interface: 3, stamp: 1, data: [1], wire: 1) }),
            ("IDB too short", { $0.block(1, [0, 0]) }),
            ("option past the block", { $0.interface(snaplen: 100, options: [(2, Array(repeating: 65, count: 8))], overrun: 64) }),
            ("if_tsresol length 2", { $0.interface(snaplen: 100, options: [(9, [6, 6])]) }),
            ("two if_tsresol", { $0.interface(snaplen: 100, options: [(9, [6]), (9, [9])]) }),
            ("if_tsresol 10^-20", { $0.interface(snaplen: 100, options: [(9, [20])]) }),
            ("if_tsresol 2^-64", { $0.interface(snaplen: 100, options: [(9, [0x80 | 64])]) }),
            ("if_tsoffset length 4", { $0.interface(snaplen: 100, options: [(14, [0, 0, 0, 1])]) }),
            ("two if_tsoffset", { $0.interface(snaplen: 100, options: [(14, $0.u64(1)), (14, $0.u64(2))]) }),
            ("opt_endofopt of length 4", { $0.interface(snaplen: 100, options: [(0, [0, 0, 0, 0])], end: false) }),
            ("options after opt_endofopt", { $0.interface(snaplen: 100, options: [(0, []), (9, [6, 6])], end: false) }),
            ("SHB too short", { $0.block(0x0A0D_0D0A, $0.u32(0x1A2B_3C4D)) }),
            ("SHB bad byte-order field", { $0.block(0x0A0D_0D0A, $0.u32(0x1234_5678) + $0.u16(1) + $0.u16(0) + $0.u64(.max)) }),
            ("SHB major version 2", { $0.section(major: 2) }),
            ("SHB minor version 7", { $0.section(minor: 7); $0.interface(snaplen: 100); $0.enhanced(stamp: 1, data: [1]) }),
            ("packet before the section's IDB", { $0.section(); $0.enhanced(stamp: 1, data: [1]) }),
            ("SPB before the section's IDB", { $0.section(); $0.simple(wire: 10, data: Array(repeating: 1, count: 10)) }),
            ("SHB then a good packet", { $0.section(); $0.interface(snaplen: 100); $0.enhanced(stamp: 1, data: [1]) }),
            ("zero-length packet", { $0.enhanced(stamp: 1, data: []) }),
            ("a second interface, libpcap's type", { $0.interface(snaplen: 100); $0.enhanced(interface: 1, stamp: 1, data: [1]) }),
        ]
        var ends: [String] = []
        for c in cases {
            var f = Pcapng(bigEndian: bigEndian)
            f.section()
            f.interface(snaplen: 100)
            f.enhanced(stamp: 1_000_000, data: [1, 2, 3, 4, 5, 6])
            c.build(&f)
            f.enhanced(stamp: 2_000_000, data: [7, 8])
            ends.append(try Self.expectSame(f, "\(c.label), big-endian \(bigEndian)").end)
        }
        // Every error libpcap reports after opening a file came up, in its words.
        let expected = [
            "has a length of 0 < 12", "has a length of 8 < 12", "has a length of 13 that is not a multiple of 4",
            "truncated pcapng dump file; tried to read", "pcapng block size 2147483632 > maximum 16777216",
            "pcapng block size 16777220 > maximum 16777216", "block total length in header and trailer don't match",
            "block of type 6 in pcapng dump file is too short", "block of type 3 in pcapng dump file is too short",
            "block of type 2 in pcapng dump file is too short", "block of type 1 in pcapng dump file is too short",
            "block of type 168627466 in pcapng dump file is too short", "invalid packet capture length 120, bigger than snaplen of 100",
            "a packet arrived on interface 7, but", "a packet arrived on interface 4294967295, but", "a packet arrived on interface 3, but",
            "a packet arrived on interface 0, but", "if_tsresol option with length 2 != 1", "more than one if_tsresol option",
            "resolution 10^-20 is too high", "resolution 2^-64 is too high", "if_tsoffset option with length 4 != 8",
            "more than one if_tsoffset option", "opt_endofopt option with length 4 != 0", "bad byte order magic field",
            "unknown pcapng savefile major version number 2",
        ]
        for text in expected {
            #expect(ends.contains { $0.contains(text) }, "no case ended with \(text)")
        }
        #expect(ends.filter { $0 == "end" }.count >= 5)
    }

    @Test func sectionsOfBothByteOrdersAreRead() throws {
        let little = Self.everything(bigEndian: false), big = Self.everything(bigEndian: true)
        let a = try Self.expectSame(little, "little")
        var both = little
        both.bytes += big.bytes
        let r = try Self.expectSame(both, "little then big")
        #expect(r.stop == little.bytes.count, "libpcap stops at the big-endian section")
        #expect(r.packets == a.packets + a.packets)
        #expect(r.origins.map { $0[1] } == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5], "\(r.origins)")
        #expect(r.end == "end")
    }

    @Test func concatenatedFilesNumberTheirInterfacesOn() throws {
        let a = Self.temp("a.pcapng"), b = Self.temp("b.pcapng"), both = Self.temp("ab.pcapng")
        defer { for f in [a, b, both] { unlink(f) } }
        _ = try Self.tool("editcap", ["-F", "pcapng", TestPaths.captures.appendingPathComponent("default.pcap").path, a])
        _ = try Self.tool("editcap", ["-F", "pcapng", TestPaths.captures.appendingPathComponent("auth-plaintext.pcap").path, b])
        let joined = try Data(contentsOf: URL(fileURLWithPath: a)) + Data(contentsOf: URL(fileURLWithPath: b))
        try joined.write(to: URL(fileURLWithPath: both))
        let ra = try Self.read(a, .automatic), rb = try Self.read(b, .automatic)
        let r = try Self.expectSame(both, "cat a b")
        #expect(r.packets == ra.packets + rb.packets)
        #expect(r.origins.map { $0[1] } == Array(repeating: 0, count: ra.packets.count) + Array(repeating: 1, count: rb.packets.count))
        #expect(r.source?.interfaceCount == 2)
    }

    // MARK: - Several link types

    static func merged() throws -> (path: String, parts: [String]) {
        let parts = ["vlan.pcap", "cooked-sll2.pcap"].map { TestPaths.captures.appendingPathComponent($0).path }
        let out = temp("merged.pcapng")
        _ = try tool("mergecap", ["-w", out] + parts)
        return (out, parts)
    }

    @Test func mergedLinkTypesAreReadPacketByPacket() throws {
        let (path, parts) = try Self.merged()
        defer { unlink(path) }
        let pure = try Self.read(path, .libpcap, pure: true)
        #expect(pure.end.hasPrefix("error: an interface has a type 276 different"), "\(pure.end)")
        let ours = try Self.read(path, .automatic)
        #expect(ours.mapped && ours.end == "end")
        #expect(ours.stop != nil)
        // libpcap read on by smtpcap's reader: the same.
        let fallback = try Self.read(path, .libpcap)
        #expect(fallback.packets == ours.packets && fallback.origins == ours.origins && fallback.end == "end")
        // Each interface's packets are its input's, with its link type.
        for (i, part) in parts.enumerated() {
            let alone = try MappedReaderTests.read(part, .libpcap)
            let source = try PcapSource.openOffline(part, reader: .libpcap)
            let mine = ours.packets.indices.filter { ours.origins[$0][1] == Int32(i) }
            #expect(mine.map { ours.packets[$0] } == alone.packets, "\(part)")
            #expect(mine.allSatisfy { ours.origins[$0][0] == source.datalink }, "\(part)")
        }
        // tshark's interface of each frame.
        let ids = try Self.tool("tshark", ["-r", path, "-T", "fields", "-e", "frame.interface_id"])
            .split(separator: "\n").map { Int32($0)! }
        #expect(ids == ours.origins.map { $0[1] })
        #expect(ours.source?.interfaceCount == 2)
        #expect(ours.source?.datalink == 1)
    }

    @Test func filtersAreCompiledForEachLinkType() throws {
        let (path, parts) = try Self.merged()
        defer { unlink(path) }
        for filter in ["tcp port 25", "ip6", "tcp[tcpflags] & tcp-syn != 0", "udp"] {
            let expected = try parts.map { try MappedReaderTests.read($0, .libpcap, filter: filter).packets }
            for reader in [PcapSource.FileReader.automatic, .libpcap] {
                let r = try Self.read(path, reader, filter: filter)
                #expect(r.end == "end")
                #expect(Set(r.packets.map(\.bytes)) == Set((expected[0] + expected[1]).map(\.bytes)), "\(filter) \(reader)")
                #expect(r.packets.count == expected[0].count + expected[1].count, "\(filter) \(reader)")
            }
        }
        #expect(throws: PcapError.self) { try Self.read(path, .automatic, filter: "tcp port") }
    }

    @Test func dumpsKeepTheFirstLinkType() throws {
        let (path, parts) = try Self.merged()
        defer { unlink(path) }
        let dump = Self.temp("dump.pcap"), alone = Self.temp("alone.pcap")
        defer { unlink(dump); unlink(alone) }
        let r = try Self.read(path, .automatic, dump: dump)
        let skipped = r.origins.filter { $0[0] != 1 }.count
        #expect(skipped > 0)
        #expect(r.source?.dumpSkipped == skipped)
        let written = try MappedReaderTests.read(dump, .libpcap)
        #expect(written.packets == (try MappedReaderTests.read(parts[0], .libpcap).packets))
        let source = try PcapSource.openOffline(dump)
        #expect(source.datalink == 1)
    }

    @Test func interfaceNamesAreTsharks() throws {
        var f = Pcapng()
        f.section()
        f.interface(options: [(2, Array("eth0".utf8))])
        f.interface(linkType: 276, options: [(2, Array("any".utf8) + [0, 0])])
        f.interface(linkType: 101)
        f.interface(options: [(2, Array(repeating: 0x61, count: 300))])
        for i: UInt32 in 0..<4 { f.enhanced(interface: i, stamp: 1, data: Array(repeating: 0x45, count: 20)) }
        let path = try f.write()
        defer { unlink(path) }
        let r = try Self.read(path, .automatic)
        let source = try #require(r.source)
        #expect(r.origins == [[1, 0], [276, 1], [12, 2], [1, 3]])
        #expect(source.interfaceName(0) == "eth0" && source.interfaceName(1) == "any" && source.interfaceName(2) == nil)
        #expect(source.interfaceName(3) == String(repeating: "a", count: 256))
        #expect(source.interfaceName(4) == nil && source.interfaceName(-1) == nil)
        let names = try Self.tool("tshark", ["-r", path, "-T", "fields", "-e", "frame.interface_name"]).split(separator: "\n", omittingEmptySubsequences: false)
        #expect(names.prefix(2) == ["eth0", "any"])
    }

    @Test func linkTypesAndSnapshotLengthsAreLibpcaps() throws {
        for linkType in UInt16(0)..<300 {
            var f = Pcapng()
            f.section()
            f.interface(linkType: linkType, snaplen: 0)
            f.enhanced(stamp: 1, data: Array(repeating: 3, count: 30))
            f.enhanced(stamp: 2, data: [], captured: 1_048_580)
            let path = try f.write()
            defer { unlink(path) }
            let r = try Self.expectSame(path, "link type \(linkType)")
            if let source = r.source, let first = r.origins.first {
                #expect(first[0] == source.datalink, "link type \(linkType)")
            }
        }
    }

    // MARK: - Caps and a growing file

    @Test func aHundredThousandInterfaces() throws {
        var f = Pcapng()
        f.section()
        for i in 0..<100_000 { f.interface(snaplen: 100, options: [(2, Array("if\(i)".utf8))]) }
        f.enhanced(interface: 99_999, stamp: 1, data: [1, 2, 3])
        f.enhanced(interface: 0, stamp: 2, data: [4])
        let r = try Self.expectSame(f, "100,000 interfaces")
        #expect(r.origins.map { $0[1] } == [99_999, 0])
        #expect(r.source?.interfaceCount == 100_000)
        #expect(r.source?.interfaceName(54_321) == "if54321")
        // Past smtpcap's limit: a clear error, not a crash or unbounded memory.
        var g = Pcapng()
        g.section()
        for _ in 0..<270_000 { g.interface(snaplen: 100) }
        let path = try g.write()
        defer { unlink(path) }
        let over = try Self.read(path, .automatic)
        #expect(over.end == "error: more than 262144 interfaces in the file (smtpcap's limit)")
    }

    @Test func aPcapngThatGrowsIsReadOn() throws {
        var f = Pcapng()
        f.section()
        f.interface()
        for i: UInt64 in 0..<3 { f.enhanced(stamp: i, data: Array(repeating: 1, count: 40)) }
        let path = try f.write()
        defer { unlink(path) }
        let source = try PcapSource.openOffline(path)
        #expect(source.readsMapping)
        #expect(MappedReaderTests.take(source, 3).lengths == [40, 40, 40])
        var more = Pcapng()
        more.interface(linkType: 101)
        more.enhanced(interface: 1, stamp: 9, data: Array(repeating: 0x45, count: 70))
        let handle = try #require(FileHandle(forWritingAtPath: path))
        handle.seekToEndOfFile()
        handle.write(Data(more.bytes))
        try handle.close()
        var lengths: [Int] = [], links: [Int32] = []
        while case .packet(let p) = source.next() {
            lengths.append(p.bytes.count)
            links.append(p.linkType)
        }
        #expect(lengths == [70] && links == [12])
        #expect(source.fileOffset == Int64(f.bytes.count + more.bytes.count))
    }
}

/// A pcapng file written block by block, in either byte order, damaged where asked.
struct Pcapng {
    var bytes: [UInt8] = []
    var bigEndian = false

    init(bigEndian: Bool = false) { self.bigEndian = bigEndian }
    init(bytes: [UInt8]) { self.bytes = bytes }

    func u16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian, Array.init) }
    func u32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian, Array.init) }
    func u64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: bigEndian ? v.bigEndian : v.littleEndian, Array.init) }

    static func padded(_ b: [UInt8]) -> [UInt8] { b + [UInt8](repeating: 0, count: (4 - b.count % 4) % 4) }

    /// A block of `type` around `body` (padded); `length` and `trailer` override the lengths
    /// written.
    mutating func block(_ type: UInt32, _ body: [UInt8], length: UInt32? = nil, trailer: UInt32? = nil) {
        let body = Self.padded(body)
        let total = UInt32(12 + body.count)
        bytes += u32(type) + u32(length ?? total) + body + u32(trailer ?? length ?? total)
    }

    func options(_ list: [(UInt16, [UInt8])], end: Bool = true, overrun: Int = 0) -> [UInt8] {
        var out: [UInt8] = []
        for (i, (code, value)) in list.enumerated() {
            out += u16(code) + u16(UInt16(value.count + (i == 0 ? overrun : 0))) + Self.padded(value)
        }
        if end && !list.isEmpty { out += u16(0) + u16(0) }
        return out
    }

    mutating func section(major: UInt16 = 1, minor: UInt16 = 0, options list: [(UInt16, [UInt8])] = []) {
        block(0x0A0D_0D0A, u32(0x1A2B_3C4D) + u16(major) + u16(minor) + u64(.max) + options(list))
    }

    mutating func interface(linkType: UInt16 = 1, snaplen: UInt32 = 65_535, options list: [(UInt16, [UInt8])] = [],
                            end: Bool = true, overrun: Int = 0) {
        block(1, u16(linkType) + u16(0) + u32(snaplen) + options(list, end: end, overrun: overrun))
    }

    mutating func enhanced(interface: UInt32 = 0, stamp: UInt64, data: [UInt8], captured: UInt32? = nil, wire: UInt32? = nil) {
        block(6, u32(interface) + u32(UInt32(stamp >> 32)) + u32(UInt32(truncatingIfNeeded: stamp))
              + u32(captured ?? UInt32(data.count)) + u32(wire ?? UInt32(data.count)) + data)
    }

    mutating func simple(wire: UInt32, data: [UInt8]) {
        block(3, u32(wire) + data)
    }

    mutating func obsolete(interface: UInt16, stamp: UInt64, data: [UInt8], wire: UInt32) {
        block(2, u16(interface) + u16(0) + u32(UInt32(stamp >> 32)) + u32(UInt32(truncatingIfNeeded: stamp))
              + u32(UInt32(data.count)) + u32(wire) + data)
    }

    /// A time stamp in the units of an if_tsresol value.
    static func stamp(seconds: Int64, nanoseconds: Int32, resolution: UInt8) -> UInt64 {
        let s = UInt64(bitPattern: seconds), n = UInt64(UInt32(bitPattern: nanoseconds))
        if resolution & 0x80 != 0 {
            let shift = UInt64(resolution & 0x7f)
            return s << shift &+ (n << shift) / 1_000_000_000
        }
        let r = Int(resolution)
        let unit = (0..<r).reduce(UInt64(1)) { a, _ in a &* 10 }
        let fraction = r <= 9 ? n / (0..<(9 - r)).reduce(UInt64(1)) { a, _ in a * 10 } : n &* (unit / 1_000_000_000)
        return s &* unit &+ fraction
    }

    /// Where each block of a little-endian file starts.
    static func boundaries(_ bytes: [UInt8]) -> [Int] {
        var out: [Int] = [], at = 0
        while at + 8 <= bytes.count {
            out.append(at)
            let length = Int(bytes[at + 4]) | Int(bytes[at + 5]) << 8 | Int(bytes[at + 6]) << 16 | Int(bytes[at + 7]) << 24
            guard length >= 12 else { break }
            at += length
        }
        return out
    }

    func write() throws -> String {
        let path = MappedReaderTests.temp("crafted.pcapng")
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }
}
