import SMTPCapTestSupport
import SMTPCapCore
import PacketDecoding
import TCPReassembly
import Testing

/// What a consumer was told, in order.
enum Event: Equatable, CustomStringConvertible {
    case data(Direction, String)
    case gap(Direction, UInt64?)
    case closed(Direction, CloseReason)
    case resumed(Int64)

    var description: String {
        switch self {
        case .resumed(let seconds): return "resumed(\(seconds))"
        case .data(let d, let s): return "data(\(d == .clientToServer ? "C" : "S"), \(s.debugDescription))"
        case .gap(let d, let n): return "gap(\(d == .clientToServer ? "C" : "S"), \(n.map(String.init) ?? "?"))"
        case .closed(let d, let r): return "closed(\(d == .clientToServer ? "C" : "S"), \(r))"
        }
    }
}

struct Recorder: StreamConsumer {
    var events: [Event] = []
    mutating func data(_ bytes: Span<UInt8>, _ direction: Direction, _ meta: ChunkMeta) {
        // Merge adjacent data of one direction: the split into deliveries is not the contract.
        let s = String(decoding: Array(span: bytes), as: UTF8.self)
        if case .data(let d, let previous) = events.last, d == direction {
            events[events.count - 1] = .data(d, previous + s)
        } else {
            events.append(.data(direction, s))
        }
    }
    mutating func gap(_ direction: Direction, lost: UInt64?, _ meta: ChunkMeta) { events.append(.gap(direction, lost)) }
    mutating func closed(_ direction: Direction, _ reason: CloseReason, _ meta: ChunkMeta) { events.append(.closed(direction, reason)) }
    mutating func resumed(afterIdleSeconds seconds: Int64, _ meta: ChunkMeta) { events.append(.resumed(seconds)) }
    /// The recorder keeps everything it is given: all of it counts against the budget.
    var bufferedBytes: Int {
        events.reduce(0) { total, event in
            if case .data(_, let s) = event { return total + s.utf8.count }
            return total
        }
    }
}

struct Finished {
    var info: ConnectionInfo
    var events: [Event]
    var client: DirectionStats
    var server: DirectionStats
}

struct RecordingFactory: StreamFactory {
    var finished: [Finished] = []
    mutating func makeConsumer(_ info: ConnectionInfo) -> Recorder { Recorder() }
    mutating func finished(_ consumer: inout Recorder, info: ConnectionInfo, client: DirectionStats, server: DirectionStats, end: Timestamp) {
        finished.append(Finished(info: info, events: consumer.events, client: client, server: server))
    }
}

let clientEndpoint = Endpoint(address: IPAddress(ipv4: 0xc633_640a), port: 40_000)
let serverEndpoint = Endpoint(address: IPAddress(ipv4: 0xcb00_7119), port: 25)

/// A segment as a test writes it: sequence numbers relative to each side's ISN.
struct Seg {
    var fromClient: Bool
    var seq: UInt32
    var data: String = ""
    var flags: TCPFlags = [.ack]
    var ack: UInt32 = 0
    var time: Int64 = 0
    var wireExtra = 0  // bytes cut by the snap length

    static func c(_ seq: UInt32, _ data: String, ack: UInt32 = 1, flags: TCPFlags = [.ack, .psh]) -> Seg {
        Seg(fromClient: true, seq: seq, data: data, flags: flags, ack: ack)
    }
    static func s(_ seq: UInt32, _ data: String, ack: UInt32 = 1, flags: TCPFlags = [.ack, .psh]) -> Seg {
        Seg(fromClient: false, seq: seq, data: data, flags: flags, ack: ack)
    }
}

func replay(_ segments: [Seg], clientISN: UInt32 = 1000, serverISN: UInt32 = 5000,
            limits: ReassemblyLimits = ReassemblyLimits()) -> [Finished] {
    var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
    for (i, s) in segments.enumerated() {
        let payload = Array(s.data.utf8)
        let segment = TCPSegment(
            source: s.fromClient ? clientEndpoint : serverEndpoint,
            destination: s.fromClient ? serverEndpoint : clientEndpoint,
            sequence: (s.fromClient ? clientISN : serverISN) &+ s.seq,
            acknowledgment: (s.fromClient ? serverISN : clientISN) &+ s.ack,
            flags: s.flags, payloadOffset: 0, capturedPayload: payload.count, wirePayload: payload.count + s.wireExtra)
        table.process(segment, frame: payload.span, meta: ChunkMeta(frame: UInt64(i + 1), timestamp: Timestamp(seconds: 1000 + s.time, nanoseconds: 0)))
    }
    table.finishAll()
    return table.factory.finished
}

let handshake: [Seg] = [
    Seg(fromClient: true, seq: 0, flags: [.syn]),
    Seg(fromClient: false, seq: 0, flags: [.syn, .ack], ack: 1),
    Seg(fromClient: true, seq: 1, flags: [.ack], ack: 1),
]
/// FINs after the client's 14 bytes and the server's 14 bytes.
let fins: [Seg] = [
    Seg(fromClient: true, seq: 15, flags: [.fin, .ack], ack: 15),
    Seg(fromClient: false, seq: 15, flags: [.fin, .ack], ack: 16),
    Seg(fromClient: true, seq: 16, flags: [.ack], ack: 16),
]
/// FINs when the server sent nothing.
let finsNoServerData: [Seg] = [
    Seg(fromClient: true, seq: 15, flags: [.fin, .ack], ack: 1),
    Seg(fromClient: false, seq: 1, flags: [.fin, .ack], ack: 16),
    Seg(fromClient: true, seq: 16, flags: [.ack], ack: 2),
]
/// The client sends "EHLO a\r\nQUIT\r\n" (14 bytes, seq 1...14) in three segments.
let clientSegments: [Seg] = [.c(1, "EHLO "), .c(6, "a\r\n"), .c(9, "QUIT\r\n")]

struct ReassemblyCase: CustomStringConvertible, Sendable {
    var name: String
    var segments: [Seg]
    var expected: [Event]
    var description: String { name }
}

let cleanEnd: [Event] = [.closed(.clientToServer, .fin), .closed(.serverToClient, .fin)]

let reassemblyCases: [ReassemblyCase] = [
    ReassemblyCase(name: "in order", segments: handshake + [.s(1, "220 x\r\n")] + [.c(1, "EHLO ", ack: 8), .c(6, "a\r\n", ack: 8), .c(9, "QUIT\r\n", ack: 8)] + [.s(8, "221 y\r\n", ack: 15)] + fins,
                   expected: [.data(.serverToClient, "220 x\r\n"), .data(.clientToServer, "EHLO a\r\nQUIT\r\n"),
                              .data(.serverToClient, "221 y\r\n")] + cleanEnd),
    ReassemblyCase(name: "reversed", segments: handshake + clientSegments.reversed() + finsNoServerData,
                   expected: [.data(.clientToServer, "EHLO a\r\nQUIT\r\n")] + cleanEnd),
    ReassemblyCase(name: "server bytes acknowledged but never captured", segments: handshake + [.c(1, "EHLO a\r\n", ack: 13)],
                   expected: [.data(.clientToServer, "EHLO a\r\n"), .closed(.clientToServer, .endOfCapture), .gap(.serverToClient, 12), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "shuffled", segments: handshake + [clientSegments[1], clientSegments[2], clientSegments[0]],
                   expected: [.data(.clientToServer, "EHLO a\r\nQUIT\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "duplicated", segments: handshake + clientSegments + clientSegments,
                   expected: [.data(.clientToServer, "EHLO a\r\nQUIT\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "overlap agreeing", segments: handshake + [.c(1, "EHLO a"), .c(3, "LO a\r\nQUIT\r\n")],
                   expected: [.data(.clientToServer, "EHLO a\r\nQUIT\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "overlap conflicting: first copy wins", segments: handshake + [.c(6, "a\r\nQUIT\r\n"), .c(6, "b\r\nQUIT\r\n"), .c(1, "EHLO ")],
                   expected: [.data(.clientToServer, "EHLO a\r\nQUIT\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "missing segment, acknowledged by the peer", segments: handshake + [.c(1, "EHLO "), .c(9, "QUIT\r\n"), .s(1, "250 ok\r\n", ack: 15)],
                   expected: [.data(.clientToServer, "EHLO "), .gap(.clientToServer, 3), .data(.clientToServer, "QUIT\r\n"),
                              .data(.serverToClient, "250 ok\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "mid-stream start", segments: [.c(6, "a\r\n"), .c(9, "QUIT\r\n")],
                   expected: [.data(.clientToServer, "a\r\nQUIT\r\n"), .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "RST ends the connection", segments: handshake + [.c(1, "EHLO a\r\n"), Seg(fromClient: false, seq: 1, flags: [.rst])],
                   expected: [.data(.clientToServer, "EHLO a\r\n"), .closed(.clientToServer, .rst), .closed(.serverToClient, .rst)]),
    ReassemblyCase(name: "snap length cut a segment", segments: handshake + [Seg(fromClient: true, seq: 1, data: "EHLO", flags: [.ack], ack: 1, wireExtra: 4), .c(9, "QUIT\r\n")],
                   expected: [.data(.clientToServer, "EHLO"), .gap(.clientToServer, 4), .data(.clientToServer, "QUIT\r\n"),
                              .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
    ReassemblyCase(name: "hole never filled: gap at the end", segments: handshake + [.c(1, "EHLO "), .c(9, "QUIT\r\n")],
                   expected: [.data(.clientToServer, "EHLO "), .gap(.clientToServer, 3), .data(.clientToServer, "QUIT\r\n"),
                              .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)]),
]

@Suite("TCP reassembly")
struct ReassemblyTests {
    @Test(arguments: reassemblyCases)
    func deliversExactStreamsAndGaps(_ c: ReassemblyCase) {
        let finished = replay(c.segments)
        #expect(finished.count == 1)
        #expect(finished.first?.events == c.expected, "\(c.name)")
    }

    @Test func sequenceWrapAround() {
        for isn in [UInt32.max - 3, UInt32.max - 8, UInt32.max, 0xffff_fff0] {
            let finished = replay(handshake + [clientSegments[2], clientSegments[0], clientSegments[1]] + fins, clientISN: isn, serverISN: UInt32.max - 1)
            #expect(finished.first?.events.first == .data(.clientToServer, "EHLO a\r\nQUIT\r\n"), "ISN \(isn)")
        }
    }

    @Test func conflictingOverlapIsCounted() {
        let finished = replay(handshake + [.c(6, "a\r\nQUIT\r\n"), .c(6, "b\r\nQUIT\r\n"), .c(1, "EHLO ")])
        #expect(finished.first?.client.conflictingOverlaps == 1)
        #expect(finished.first?.client.outOfOrder == 2)
    }

    @Test func fourTupleReuseIsANewSession() {
        let first = handshake + [.c(1, "EHLO a\r\n")] + [Seg(fromClient: true, seq: 9, flags: [.fin, .ack], ack: 1), Seg(fromClient: false, seq: 1, flags: [.fin, .ack], ack: 10)]
        // Same ports, new ISN (relative seq far away), a new handshake.
        let second: [Seg] = [Seg(fromClient: true, seq: 100_000, flags: [.syn], time: 5),
                             Seg(fromClient: false, seq: 200_000, flags: [.syn, .ack], ack: 100_001, time: 5),
                             Seg(fromClient: true, seq: 100_001, data: "HELO b\r\n", flags: [.ack, .psh], ack: 200_001, time: 5)]
        let finished = replay(first + second)
        #expect(finished.count == 2)
        #expect(finished[0].events.first == .data(.clientToServer, "EHLO a\r\n"))
        #expect(finished[1].events.first == .data(.clientToServer, "HELO b\r\n"))
        #expect(finished[1].info.handshakeSeen)
    }

    @Test func idleConnectionsExpireByCaptureTime() {
        var limits = ReassemblyLimits()
        limits.idleTimeoutSeconds = 60
        var segments = handshake + [.c(1, "EHLO a\r\n")]
        var late = Seg.s(1, "220 x\r\n")
        late.time = 500
        segments.append(late)
        let finished = replay(segments, limits: limits)
        // The old connection expired; the late server segment started a new (mid-stream) one.
        #expect(finished.count == 2)
        #expect(finished[0].events.last == .closed(.serverToClient, .idle))
    }

    @Test func aPauseShorterThanTwoTimeoutsResumesTheConnection() {
        // RFC 5321 lets a client pause 10 minutes in DATA: past the idle timeout the connection
        // goes dormant, and its next segment resumes it, marked, as one connection.
        var limits = ReassemblyLimits()
        limits.idleTimeoutSeconds = 60
        var segments = handshake + [.c(1, "EHLO a\r\n")]
        var late = Seg.s(1, "220 x\r\n")
        late.time = 100
        segments.append(late)
        let finished = replay(segments, limits: limits)
        #expect(finished.count == 1)
        #expect(finished.first?.events == [.data(.clientToServer, "EHLO a\r\n"), .resumed(100), .data(.serverToClient, "220 x\r\n"),
                                           .closed(.clientToServer, .endOfCapture), .closed(.serverToClient, .endOfCapture)])
    }

    @Test func aNewConnectionOnADormantFourTupleEndsTheOldOneAsIdle() {
        var limits = ReassemblyLimits()
        limits.idleTimeoutSeconds = 60
        var segments = handshake + [.c(1, "EHLO a\r\n")]
        var syn = Seg(fromClient: true, seq: 500, flags: [.syn])  // another ISN: a new connection
        syn.time = 100
        segments.append(syn)
        let finished = replay(segments, limits: limits)
        #expect(finished.count == 2)
        #expect(finished.first?.events == [.data(.clientToServer, "EHLO a\r\n"), .closed(.clientToServer, .idle), .closed(.serverToClient, .idle)])
        #expect(!(finished.first?.events.contains { if case .resumed = $0 { return true } else { return false } } ?? true))
    }

    @Test func aConnectionStillDormantAtTheEndEndsAsIdle() {
        var limits = ReassemblyLimits()
        limits.idleTimeoutSeconds = 60
        var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
        for (i, s) in (handshake + [.c(1, "EHLO a\r\n")]).enumerated() {
            let payload = Array(s.data.utf8)
            table.process(TCPSegment(source: s.fromClient ? clientEndpoint : serverEndpoint,
                                     destination: s.fromClient ? serverEndpoint : clientEndpoint,
                                     sequence: 1000 &+ s.seq, acknowledgment: 5000 &+ s.ack, flags: s.flags, payloadOffset: 0,
                                     capturedPayload: payload.count, wirePayload: payload.count),
                          frame: payload.span, meta: ChunkMeta(frame: UInt64(i + 1), timestamp: Timestamp(seconds: 1000, nanoseconds: 0)))
        }
        let stranger = Endpoint(address: IPAddress(ipv4: 0xc633_6499), port: 41_000)
        table.process(TCPSegment(source: stranger, destination: serverEndpoint, sequence: 1, acknowledgment: 0, flags: [.syn],
                                 payloadOffset: 0, capturedPayload: 0, wirePayload: 0),
                      frame: [UInt8]().span, meta: ChunkMeta(frame: 9, timestamp: Timestamp(seconds: 1090, nanoseconds: 0)))
        table.finishAll()
        let first = table.factory.finished.first { $0.info.client == clientEndpoint }
        #expect(first?.events.last == .closed(.serverToClient, .idle))
        #expect(table.stats.expired == 1)
    }

    @Test func theSameFourTupleInTwoContextsIsTwoConnections() {
        // Two tunnels (or interfaces) carrying the same inner addresses and ports.
        var table = FlowTable(factory: RecordingFactory(), limits: ReassemblyLimits(), serverPorts: [25])
        for context: UInt32 in [0, 1, 2, 0x1_0000, 0x1_0001] {
            var syn = TCPSegment(source: clientEndpoint, destination: serverEndpoint, sequence: 1, acknowledgment: 0, flags: [.syn],
                                 payloadOffset: 0, capturedPayload: 0, wirePayload: 0)
            syn.context = context
            table.process(syn, frame: [UInt8]().span, meta: ChunkMeta(frame: 1, timestamp: Timestamp(seconds: 1000, nanoseconds: 0)))
            let payload = Array("EHLO a\r\n".utf8)
            var data = TCPSegment(source: clientEndpoint, destination: serverEndpoint, sequence: 2, acknowledgment: 0, flags: [.ack, .psh],
                                  payloadOffset: 0, capturedPayload: payload.count, wirePayload: payload.count)
            data.context = context
            table.process(data, frame: payload.span, meta: ChunkMeta(frame: 2, timestamp: Timestamp(seconds: 1000, nanoseconds: 0)))
        }
        #expect(table.openConnections == 5)
        table.finishAll()
        #expect(Set(table.factory.finished.map(\.info.context)) == [0, 1, 2, 0x1_0000, 0x1_0001])
        #expect(table.factory.finished.allSatisfy { $0.events.first == .data(.clientToServer, "EHLO a\r\n") })
    }

    @Test func connectionTableIsCapped() {
        var limits = ReassemblyLimits()
        limits.maxConnections = 100
        var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
        for i in 0..<10_000 {
            let source = Endpoint(address: IPAddress(ipv4: 0xc633_6400 + UInt32(i % 200)), port: UInt16(1024 + i / 200))
            let segment = TCPSegment(source: source, destination: serverEndpoint, sequence: UInt32(i), acknowledgment: 0,
                                     flags: [.syn], payloadOffset: 0, capturedPayload: 0, wirePayload: 0)
            table.process(segment, frame: [UInt8]().span, meta: ChunkMeta(frame: UInt64(i), timestamp: Timestamp(seconds: 1000, nanoseconds: Int32(i))))
            #expect(table.openConnections <= 100)
        }
        #expect(table.stats.evicted >= 9_900)
        #expect(table.stats.connections == 10_000)
    }

    @Test func restOfAnEvictedConnectionIsDropped() {
        // Connections evicted because the table is full: their later data is stray, not a new
        // connection (which would evict another, and so on); a new SYN on the tuple is new.
        var limits = ReassemblyLimits()
        limits.maxConnections = 8
        var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
        let data = [UInt8]("MAIL FROM:<a@b>\r\n".utf8)
        func send(_ i: Int, _ flags: TCPFlags, sequence: UInt32, payload: [UInt8]) {
            let source = Endpoint(address: IPAddress(ipv4: 0xc633_6400 + UInt32(i)), port: 40_000)
            let segment = TCPSegment(source: source, destination: serverEndpoint, sequence: sequence, acknowledgment: 0,
                                     flags: flags, payloadOffset: 0, capturedPayload: payload.count, wirePayload: payload.count)
            table.process(segment, frame: payload.span, meta: ChunkMeta(frame: 1, timestamp: Timestamp(seconds: 1000, nanoseconds: Int32(i))))
        }
        for i in 0..<40 { send(i, [.syn], sequence: 100, payload: []) }
        let evicted = table.stats.evicted
        #expect(evicted >= 32)
        #expect(table.stats.connections == 40)
        // Data on the first (evicted) connections: dropped.
        for i in 0..<8 { send(i, [.psh], sequence: 101, payload: data) }
        #expect(table.stats.connections == 40)
        #expect(table.stats.strayPackets == 8)
        #expect(table.stats.evicted == evicted)
        // A new SYN on an evicted tuple starts a new connection.
        send(0, [.syn], sequence: 5_000, payload: [])
        #expect(table.stats.connections == 41)
    }

    @Test func consumersBuffersAreBudgeted() {
        var limits = ReassemblyLimits()
        limits.maxBufferedBytesTotal = 10_000
        var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
        let chunk = [UInt8](repeating: 0x41, count: 3_000)
        // Eight connections, each handing its consumer 3,000 bytes it keeps.
        for i in 0..<8 {
            let source = Endpoint(address: IPAddress(ipv4: 0xc633_6400 + UInt32(i)), port: 40_000)
            let syn = TCPSegment(source: source, destination: serverEndpoint, sequence: 100, acknowledgment: 0,
                                 flags: [.syn], payloadOffset: 0, capturedPayload: 0, wirePayload: 0)
            let data = TCPSegment(source: source, destination: serverEndpoint, sequence: 101, acknowledgment: 0,
                                  flags: [.psh], payloadOffset: 0, capturedPayload: chunk.count, wirePayload: chunk.count)
            let meta = ChunkMeta(frame: UInt64(i), timestamp: Timestamp(seconds: 1000, nanoseconds: 0))
            table.process(syn, frame: [UInt8]().span, meta: meta)
            table.process(data, frame: chunk.span, meta: meta)
        }
        // Past 10,000 bytes the largest holders (oldest first among equals) are evicted until
        // an eighth of the budget is free: connections 0 and 1 at the fourth, 2 and 3 at the
        // sixth, 4 and 5 at the eighth. Each is ended and reported, marked, with what it had.
        #expect(table.stats.evictedForMemory == 6)
        let evicted = table.factory.finished.filter { $0.events.contains(.closed(.clientToServer, .evicted)) }
        #expect(evicted.count == 6)
        #expect(evicted.map { $0.info.client.address.low & 0xff } == [0, 1, 2, 3, 4, 5])
        #expect(evicted.allSatisfy { $0.events.contains(.data(.clientToServer, String(repeating: "A", count: 3_000))) })
        // More data on an evicted connection is dropped as stray, not taken for a new one.
        let first = Endpoint(address: IPAddress(ipv4: 0xc633_6400), port: 40_000)
        let more = TCPSegment(source: first, destination: serverEndpoint, sequence: 3_101, acknowledgment: 0,
                              flags: [.psh], payloadOffset: 0, capturedPayload: chunk.count, wirePayload: chunk.count)
        table.process(more, frame: chunk.span, meta: ChunkMeta(frame: 99, timestamp: Timestamp(seconds: 1001, nanoseconds: 0)))
        #expect(table.stats.strayPackets == 1)
        #expect(table.stats.connections == 8)
        table.finishAll()
        #expect(table.factory.finished.count == 8)
        // Counted once: the retired slots ended at the end of capture are not counted again.
        #expect(table.stats.evicted == 0 && table.stats.expired == 0)
    }

    @Test func theLargestHolderIsEvictedNotTheNewcomer() {
        var limits = ReassemblyLimits()
        limits.maxBufferedBytesTotal = 10_000
        var table = FlowTable(factory: RecordingFactory(), limits: limits, serverPorts: [25])
        func send(_ host: UInt32, sequence: UInt32, _ count: Int, syn: Bool = false) {
            let source = Endpoint(address: IPAddress(ipv4: 0xc633_6400 + host), port: 40_000)
            let payload = [UInt8](repeating: 0x42, count: count)
            let segment = TCPSegment(source: source, destination: serverEndpoint, sequence: sequence, acknowledgment: 0,
                                     flags: syn ? [.syn] : [.psh], payloadOffset: 0, capturedPayload: count, wirePayload: count)
            table.process(segment, frame: payload.span, meta: ChunkMeta(frame: 1, timestamp: Timestamp(seconds: 1000, nanoseconds: 0)))
        }
        send(1, sequence: 100, 0, syn: true)
        for i in 0..<3 { send(1, sequence: 101 + UInt32(i * 3_000), 3_000) }  // 9,000 bytes held
        send(2, sequence: 100, 0, syn: true)
        send(2, sequence: 101, 1_500)  // 10,500 in all: over the budget
        #expect(table.stats.evictedForMemory == 1)
        let evicted = table.factory.finished.filter { $0.events.contains(.closed(.clientToServer, .evicted)) }
        #expect(evicted.map { $0.info.client.address.low & 0xff } == [1])
        table.finishAll()
        let newcomer = table.factory.finished.first { $0.info.client.address.low & 0xff == 2 }
        #expect(newcomer?.events.contains(.closed(.clientToServer, .endOfCapture)) == true)
    }

    @Test func memoryBudgetScalesTheLimits() {
        let small = ReassemblyLimits.forMemory(mebibytes: 64)
        let large = ReassemblyLimits.forMemory(mebibytes: 256)
        // 30 MiB for the process; half the rest for connections at 4 KiB, an eighth each for
        // held and buffered bytes.
        #expect(large.maxConnections == (256 - 30) * 1024 / 8)
        #expect(small.maxConnections == (64 - 30) * 1024 / 8)
        #expect(large.maxHeldBytesTotal + large.maxBufferedBytesTotal == ((256 - 30) << 20) / 4)
        #expect(small.maxHeldBytesTotal == ((64 - 30) << 20) / 8)
        #expect(small.maxHeldBytesPerDirection <= small.maxHeldBytesTotal)
        // The defaults are the 256 MiB budget's.
        let defaults = ReassemblyLimits()
        #expect(defaults.maxConnections == large.maxConnections)
        #expect(defaults.maxHeldBytesTotal == large.maxHeldBytesTotal)
        #expect(defaults.maxBufferedBytesTotal == large.maxBufferedBytesTotal)
    }

    @Test func outOfOrderBytesAreCapped() {
        var limits = ReassemblyLimits()
        limits.maxHeldBytesPerDirection = 1000
        // A hole at the start, then 5000 bytes far ahead of it.
        var segments = handshake
        for i in 0..<50 { segments.append(.c(UInt32(101 + i * 100), String(repeating: "x", count: 100))) }
        let finished = replay(segments, limits: limits)
        let events = finished[0].events
        #expect(events.contains(.gap(.clientToServer, 100)))
        var delivered = 0
        for case .data(_, let s) in events { delivered += s.count }
        #expect(delivered == 5000)
    }
}

@Suite("TCP reassembly bounds")
struct ReassemblyBoundsTests {
    @Test func segmentFarOutOfWindowIsDropped() {
        // 1 GB ahead and never acknowledged: dropped, the stream goes on.
        var far = Seg.c(1_000_000_001, String(repeating: "z", count: 100))
        far.ack = 1
        let finished = replay(handshake + [.c(1, "EHLO a\r\n"), far, .c(9, "QUIT\r\n")])
        #expect(finished[0].events.first == .data(.clientToServer, "EHLO a\r\nQUIT\r\n"))
        #expect(finished[0].client.outOfWindow == 1)
        #expect(!finished[0].events.contains { if case .gap = $0 { return true } else { return false } })
    }

    @Test func farJumpAcknowledgedByThePeerIsALoss() {
        // The same jump, but the server acknowledged past it: the capture lost that data; the
        // stream resumes at the acknowledged point (the far segment itself was dropped).
        let jump: UInt32 = 20 << 20
        let finished = replay(handshake + [.c(1, "EHLO a\r\n"), .c(9 + jump, "QUIT\r\n"),
                                           .s(1, "221 bye\r\n", ack: 15 + jump), .c(15 + jump, "NOOP\r\n", ack: 10)])
        let events = finished[0].events
        #expect(events.contains(.gap(.clientToServer, UInt64(jump) + 6)))
        #expect(events.contains(.data(.clientToServer, "NOOP\r\n")))
        #expect(finished[0].client.outOfWindow == 1)
    }
}
