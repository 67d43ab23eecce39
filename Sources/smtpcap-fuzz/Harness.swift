import CGzipFile
import Findings
import PacketDecoding
import Probe
@_spi(Testing) import PcapSource
import Reporting
import SMTPMachine
import SMTPCapCore
import SMTPCapEngine
import TCPReassembly
#if canImport(Glibc)
import Glibc
#endif

/// One fuzz harness per parser layer. Which one runs is chosen by SMTPCAP_FUZZ_TARGET
/// (decode, ipframes, reassembly, smtp, tls, pcap, pcapng, gzip, dns); every input must end without a
/// trap.
enum Harness: String, CaseIterable {
    case decode
    case ipframes
    case reassembly
    case smtp
    case tls
    case pcap
    case pcapng
    case gzip
    case dns

    static let selected: Harness = {
        guard let name = getenv("SMTPCAP_FUZZ_TARGET").map({ String(cString: $0) }), let h = Harness(rawValue: name) else {
            return .smtp
        }
        return h
    }()

    func run(_ data: UnsafeRawBufferPointer) {
        switch self {
        case .decode: Self.decode(data)
        case .ipframes: Self.ipframes(data)
        case .reassembly: Self.reassembly(data)
        case .smtp: Self.smtp(data)
        case .tls: Self.tls(data)
        case .pcap: Self.pcap(data)
        case .pcapng: Self.pcapng(data)
        case .gzip: Self.gzip(data)
        case .dns: Self.dns(data)
        }
    }

    /// A DNS response as `probe`'s resolver reads it for MX records.
    static func dns(_ data: UnsafeRawBufferPointer) {
        if let records = DNSMessage.mxRecords(Array(data)) {
            precondition(records.count <= data.count / 11 + 1)
        }
    }

    /// The first byte picks the link type; the rest is the frame.
    static func decode(_ data: UnsafeRawBufferPointer) {
        guard let first = data.first else { return }
        let dlts: [Int32] = [0, 1, 12, 108, 113, 228, 229, 276]
        let decoder = PacketDecoder(linkType: LinkType(dlt: dlts[Int(first) % dlts.count])!)
        let frame = UnsafeRawBufferPointer(rebasing: data[1...])
        if case .tcp(let s) = decoder.decode(frame.assumingMemoryBound(to: UInt8.self).span) {
            precondition(s.payloadOffset + s.capturedPayload <= frame.count)
        }
    }

    /// Frames, each `[link][length (2 bytes)][frame]`, decoded through their tunnels; IP
    /// fragments go to a reassembler under small caps (the clock moves with the last byte of
    /// each frame), and every datagram it rebuilds is decoded in turn.
    static func ipframes(_ data: UnsafeRawBufferPointer) {
        let bytes = Array(data)
        let dlts: [Int32] = [0, 1, 12, 108, 113, 228, 229, 276]
        var limits = DefragmentLimits()
        limits.maxDatagrams = 8
        limits.maxHeldBytes = 16 << 10
        limits.maxFragmentsPerDatagram = 16
        limits.timeoutSeconds = 30
        var defragmenter = Defragmenter(limits: limits)
        var at = 0
        var clock: Int64 = 0
        while at + 3 <= bytes.count {
            let decoder = PacketDecoder(linkType: LinkType(dlt: dlts[Int(bytes[at]) % dlts.count])!)
            let n = min(Int(bytes[at + 1]) << 8 | Int(bytes[at + 2]), bytes.count - at - 3)
            let frame = Array(bytes[(at + 3)..<(at + 3 + n)])
            at += 3 + n
            clock += Int64(frame.last ?? 0) & 0x0f
            var tunnel = TunnelStack()
            switch decoder.decode(frame.span, tunnel: &tunnel) {
            case .tcp(let s):
                precondition(s.payloadOffset + s.capturedPayload <= frame.count)
            case .fragment(let f):
                precondition(f.capturedLength >= 0 && f.payloadOffset + f.capturedLength <= frame.count)
                if let datagram = defragmenter.add(f, frame: frame.span, tunnel: tunnel, time: Timestamp(seconds: clock, nanoseconds: 0)) {
                    precondition(datagram.count <= 65_535 + 40)
                    var inner = tunnel
                    if case .tcp(let s) = decoder.decodeDatagram(datagram.span, tunnel: &inner) {
                        precondition(s.payloadOffset + s.capturedPayload <= datagram.count)
                    }
                    precondition(inner.count >= tunnel.count)
                }
            case .other, .malformed:
                break
            }
            precondition(tunnel.count <= TunnelStack.capacity)
            precondition(defragmenter.pendingDatagrams <= limits.maxDatagrams)
        }
        defragmenter.finish()
        let s = defragmenter.stats
        precondition(s.usedFragments <= s.fragments)
    }

    struct Sink: StreamFactory {
        mutating func makeConsumer(_ info: ConnectionInfo) -> SMTPSession { SMTPSession(info: info) }
        mutating func finished(_ consumer: inout SMTPSession, info: ConnectionInfo, client: DirectionStats,
                               server: DirectionStats, end: Timestamp) {
            var record = consumer.finish(client: client, server: server, end: end)
            SessionFindings.evaluate(&record)
            _ = JSONLinesReport.session(record, file: nil)
        }
    }

    /// A script of segments: [flags][dir+len][seq delta (2)][payload...], fed to the flow
    /// table with an SMTP machine behind it, under small limits so the caps are exercised.
    static func reassembly(_ data: UnsafeRawBufferPointer) {
        var limits = ReassemblyLimits()
        limits.maxConnections = 4
        limits.maxHeldBytesPerDirection = 512
        limits.maxHeldBytesTotal = 2048
        limits.idleTimeoutSeconds = 5
        var table = FlowTable(factory: Sink(), limits: limits, serverPorts: [25])
        let client = Endpoint(address: IPAddress(ipv4: 0xc633_640a), port: 40_000)
        let server = Endpoint(address: IPAddress(ipv4: 0xcb00_7119), port: 25)
        var seq: [UInt32] = [1000, 5000]
        var p = 0, frame: UInt64 = 0
        while p + 4 <= data.count {
            let flags = TCPFlags(rawValue: data[p] & 0x1f)
            let fromClient = data[p + 1] & 0x80 == 0
            let length = min(Int(data[p + 1] & 0x7f), data.count - p - 4)
            let delta = Int16(bitPattern: UInt16(data[p + 2]) << 8 | UInt16(data[p + 3]))
            let payload = UnsafeRawBufferPointer(rebasing: data[(p + 4)..<(p + 4 + length)])
            let d = fromClient ? 0 : 1
            seq[d] = seq[d] &+ UInt32(bitPattern: Int32(delta))
            let segment = TCPSegment(source: fromClient ? client : server, destination: fromClient ? server : client,
                                     sequence: seq[d], acknowledgment: seq[1 - d], flags: flags, payloadOffset: 0,
                                     capturedPayload: length, wirePayload: length + Int(data[p] >> 6))
            frame += 1
            table.process(segment, frame: payload.assumingMemoryBound(to: UInt8.self).span, meta: ChunkMeta(frame: frame, timestamp: Timestamp(seconds: Int64(frame / 4), nanoseconds: 0)))
            seq[d] = seq[d] &+ UInt32(length)
            p += 4 + length
        }
        table.finishAll()
    }

    /// A dialogue: byte 0 seeds the chunking, 0x00 switches direction; the session is then
    /// finished and reported.
    static func smtp(_ data: UnsafeRawBufferPointer, port: UInt16 = 25) {
        guard let seed = data.first else { return }
        let info = ConnectionInfo(id: 1, client: Endpoint(address: IPAddress(ipv4: 1), port: 40_000),
                                  server: Endpoint(address: IPAddress(ipv4: 2), port: port), serverEvidence: .handshake,
                                  handshakeSeen: seed & 1 == 0, firstFrame: 1, start: .zero)
        var options = SessionOptions()
        options.transcript = seed & 2 == 0
        var machine = SMTPSession(info: info, options: options)
        var direction = Direction.serverToClient
        var start = 1, i = 1, frame: UInt64 = 1
        let chunk = Int(seed >> 2) + 1
        func flush(_ end: Int) {
            var s = start
            while s < end {
                let e = min(end, s + chunk)
                machine.data(UnsafeRawBufferPointer(rebasing: data[s..<e]).assumingMemoryBound(to: UInt8.self).span, direction, ChunkMeta(frame: frame, timestamp: .zero))
                s = e
            }
        }
        while i < data.count {
            if data[i] == 0 {
                flush(i)
                if seed & 4 != 0, frame % 7 == 3 { machine.gap(direction, lost: UInt64(frame), ChunkMeta(frame: frame, timestamp: .zero)) }
                direction = direction.reversed
                start = i + 1
                frame += 1
            }
            i += 1
        }
        flush(data.count)
        machine.closed(.clientToServer, .fin, ChunkMeta(frame: frame, timestamp: .zero))
        var record = machine.finish(client: DirectionStats(), server: DirectionStats(), end: .zero)
        SessionFindings.evaluate(&record)
        _ = JSONLinesReport.session(record, file: nil)
        _ = TextReport(color: false, transcript: true).session(record, file: nil)
    }

    /// TLS records in both directions, through the machine as implicit TLS (port 465).
    static func tls(_ data: UnsafeRawBufferPointer) { smtp(data, port: 465) }

    /// The whole file path: libpcap's reader, decoding, reassembly, analysis, both reports.
    static func pcap(_ data: UnsafeRawBufferPointer) {
        let path = "/tmp/smtpcap-fuzz-\(getpid()).pcap"
        guard let f = fopen(path, "wb") else { return }
        if let base = data.baseAddress { fwrite(base, 1, data.count, f) }
        fclose(f)
        defer { unlink(path) }
        compareReaders(path)
        analyze(path)
    }

    /// The minimal pcapng head put before inputs that do not start with a Section Header
    /// Block: a little-endian section and one Ethernet interface, so that the fuzzer's bytes
    /// are the blocks after them.
    static let pcapngHead: [UInt8] = [
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0,
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
        1, 0, 0, 0, 20, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 20, 0, 0, 0,
    ]

    /// smtpcap's pcapng reader against libpcap, then the whole file path as for `pcap`.
    static func pcapng(_ data: UnsafeRawBufferPointer) {
        let path = "/tmp/smtpcap-fuzz-\(getpid()).pcapng"
        guard let f = fopen(path, "wb") else { return }
        if !data.starts(with: pcapngHead.prefix(4)) { fwrite(pcapngHead, 1, pcapngHead.count, f) }
        if let base = data.baseAddress { fwrite(base, 1, data.count, f) }
        fclose(f)
        defer { unlink(path) }
        compareReaders(path)
        analyze(path)
    }

    /// `-r FILE.gz`: the input compressed with zlib must read exactly as the plain file does
    /// (a pcap file as libpcap's stream, a pcapng file as smtpcap's reader reads it, from the
    /// decompressed copy); an input that starts with gzip's magic is taken as the compressed
    /// file itself, and must end cleanly however damaged.
    static func gzip(_ data: UnsafeRawBufferPointer) {
        let plain = "/tmp/smtpcap-fuzz-\(getpid()).pcap", packed = plain + ".gz"
        let raw = data.starts(with: [0x1f, 0x8b])
        guard let f = fopen(raw ? packed : plain, "wb") else { return }
        if let base = data.baseAddress { fwrite(base, 1, data.count, f) }
        fclose(f)
        defer {
            unlink(plain)
            unlink(packed)
        }
        if !raw {
            guard smtpcap_gzip_compress_file(plain, packed) == 0 else { return }
            let pcapng = data.starts(with: [0x0a, 0x0d, 0x0d, 0x0a])
            let expected = pcapng ? readAll(plain, .automatic).items : readAll(plain, .libpcap, pure: true).items
            let got = readAll(packed, .automatic).items
            if got != expected {
                let i = zip(got, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(got.count, expected.count)
                let show = { (items: [String]) in i < items.count ? String(items[i].prefix(300)) : "nothing" }
                fatalError("the gzip path and the plain file disagree at item \(i + 1): \(show(got)) against \(show(expected))")
            }
        }
        analyze(packed)
    }

    /// The file readers must agree on every input libpcap reads: same packets, same end.
    /// Where the pcapng reader reads on past a block libpcap refuses (an interface of another
    /// link type or snapshot length, a section of the other byte order), libpcap's packets
    /// must be its first ones and libpcap must have ended with an error.
    static func compareReaders(_ path: String) {
        let (mapped, stop) = readAll(path, .automatic)
        let libpcap = readAll(path, .libpcap, pure: true).items
        var ours = mapped
        if stop != nil {
            guard let last = libpcap.last, last != "end", ours.count >= libpcap.count else {
                fatalError("the pcapng reader read on where libpcap did not stop: \(libpcap.last ?? "nothing")")
            }
            ours = Array(ours.prefix(libpcap.count - 1)) + [last]
        }
        if ours != libpcap {
            let i = zip(ours, libpcap).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(ours.count, libpcap.count)
            let show = { (items: [String]) in i < items.count ? String(items[i].prefix(300)) : "nothing" }
            fatalError("the mapped reader and libpcap disagree at item \(i + 1): \(show(ours)) against \(show(libpcap))")
        }
        // libpcap read on by the pcapng reader where libpcap stops: what the mapped reader gives.
        if stop != nil, let last = libpcap.last, last.hasPrefix("an interface has a "), readAll(path, .libpcap).items != mapped {
            fatalError("libpcap read on by the pcapng reader disagrees with the pcapng reader")
        }
    }

    static func analyze(_ path: String) {
        let null = open("/dev/null", O_WRONLY)
        defer { close(null) }
        for json in [false, true] {
            var options = EngineOptions()
            options.files = [path]
            options.format = json ? .json : .text
            options.transcript = true
            _ = try? Engine(options: options, output: ReportOutput(fd: null), errors: ReportOutput(fd: null)).run()
        }
    }

    /// Every packet (lengths, time stamp, bytes) and then how the file ended, as strings;
    /// and where libpcap would have stopped on a pcapng file the mapped reader reads on.
    /// `pure`: libpcap alone, without the pcapng reader taking over.
    static func readAll(_ path: String, _ reader: PcapSource.FileReader, pure: Bool = false) -> (items: [String], stop: Int?) {
        guard let source = try? PcapSource.openOffline(path, reader: reader) else { return (["cannot open"], nil) }
        if pure { source.keepToLibpcap() }
        var out: [String] = []
        while true {
            switch source.next() {
            case .packet(let p):
                out.append("\(p.bytes.count) \(p.wireLength) \(p.seconds).\(p.nanoseconds) \(Array(p.bytes))")
            case .timeout: return (out + ["timeout"], source.libpcapWouldStopAt)
            case .end: return (out + ["end"], source.libpcapWouldStopAt)
            case .error(let message): return (out + [message], source.libpcapWouldStopAt)
            }
        }
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    Harness.selected.run(UnsafeRawBufferPointer(start: data, count: size))
    return 0
}
