import PacketDecoding
import SMTPCapCore

struct Flow<Consumer: StreamConsumer> {
    var info: ConnectionInfo
    var client = HalfStream()
    var server = HalfStream()
    var consumer: Consumer
    var lastSeen: Timestamp
    var clientISN: UInt32?
    /// The consumer's `bufferedBytes` as last counted in the table's total.
    var accountedBuffered = 0

    /// What a packet did to the flow, so the table need not read the flow again (a read of
    /// an element of `[Flow?]` copies the whole flow, SMTP machine included).
    struct Outcome {
        var newlyHeld = 0
        var heldBeforeFlush = 0
        var bothClosed = false
        /// Change of the consumer's buffered bytes.
        var bufferedDelta = 0
    }

    enum Admission {
        case accept
        /// The 4-tuple is reused by a new connection.
        case reused
        /// A packet for a connection already closed.
        case stray
    }

    enum Handled {
        case handled(Outcome)
        case reused
        case stray
    }

    /// `admission` and, for a packet admitted, `handle`, in one call on the flow in place.
    @inline(__always)
    mutating func admitAndHandle(_ segment: TCPSegment, payload: Span<UInt8>, meta: ChunkMeta,
                                 limits: ReassemblyLimits, heldTotalOver: (Int) -> Bool) -> Handled {
        switch admission(of: segment) {
        case .accept: return .handled(handle(segment, payload: payload, meta: meta, limits: limits, heldTotalOver: heldTotalOver))
        case .reused: return .reused
        case .stray: return .stray
        }
    }

    /// Mutating only so the caller reaches the flow in place, without a copy.
    mutating func admission(of segment: TCPSegment) -> Admission {
        let syn = segment.flags.contains(.syn) && !segment.flags.contains(.ack)
        if syn, let clientISN, clientISN != segment.sequence { return .reused }
        if client.closed && server.closed { return syn ? .reused : .stray }
        return .accept
    }

    mutating func handle(_ segment: TCPSegment, payload: Span<UInt8>, meta: ChunkMeta,
                         limits: ReassemblyLimits, heldTotalOver: (Int) -> Bool) -> Outcome {
        let fromClient = segment.source == info.client
        var outcome = Outcome()
        let deliveredBefore = client.stats.bytes &+ server.stats.bytes &+ UInt64(client.stats.gaps + server.stats.gaps)
        outcome.newlyHeld = handle(segment, payload: payload, fromClient: fromClient, meta: meta, limits: limits)
        if outcome.newlyHeld > 0 && heldTotalOver(outcome.newlyHeld) {
            outcome.heldBeforeFlush = heldBytes
            flushHeld(meta: meta)
        }
        outcome.bothClosed = bothClosed
        // The consumer's buffers change only when it was given something: bytes, a gap or a
        // close (a pure ACK that delivered nothing, a third of the packets, skips the count).
        let delivered = client.stats.bytes &+ server.stats.bytes &+ UInt64(client.stats.gaps + server.stats.gaps)
        if delivered != deliveredBefore || !segment.flags.isDisjoint(with: [.fin, .rst]) {
            let buffered = consumer.bufferedBytes
            outcome.bufferedDelta = buffered - accountedBuffered
            accountedBuffered = buffered
        }
        return outcome
    }

    mutating func handle(_ segment: TCPSegment, payload: Span<UInt8>, fromClient: Bool,
                         meta: ChunkMeta, limits: ReassemblyLimits) -> Int {
        lastSeen = meta.timestamp
        let direction: Direction = fromClient ? .clientToServer : .serverToClient
        let flags = segment.flags
        // Path evidence first: a reset injected by another box is exactly what it is for;
        // but not one after a FIN (a firewall ending a connection it already saw close).
        let syn = flags.contains(.syn)
        if _slowPath(flags.contains(.rst)) && (client.stats.finSeen || server.stats.finSeen) {
            // not path evidence
        } else if fromClient {
            client.stats.path.observe(ttl: segment.ttl, syn: syn, data: segment.wirePayload > 0, frame: meta.frame)
        } else {
            server.stats.path.observe(ttl: segment.ttl, syn: syn, data: segment.wirePayload > 0, frame: meta.frame)
        }
        if flags.contains(.rst) {
            if fromClient { client.stats.rstSeen = true } else { server.stats.rstSeen = true }
            return 0
        }
        if flags.contains(.syn) {
            if fromClient {
                if clientISN == nil { clientISN = segment.sequence }
                client.syn(sequence: segment.sequence)
            } else {
                server.syn(sequence: segment.sequence)
            }
        }
        // The ACK first: what the peer acknowledged was sent before this segment's payload, so
        // a hole it proves lost is reported (and held bytes after it delivered) before this
        // side's reply to them.
        if flags.contains(.ack) {
            // This side's ACK speaks of the other direction's bytes.
            if fromClient {
                server.peerAcknowledged(segment.acknowledgment, meta: meta, direction: .serverToClient,
                                        jumpLimit: limits.maxJumpAhead, consumer: &consumer)
            } else {
                client.peerAcknowledged(segment.acknowledgment, meta: meta, direction: .clientToServer,
                                        jumpLimit: limits.maxJumpAhead, consumer: &consumer)
            }
        }
        var newlyHeld = 0
        let dataSequence = flags.contains(.syn) ? segment.sequence &+ 1 : segment.sequence
        if segment.wirePayload > 0 {
            if fromClient {
                newlyHeld = client.segment(sequence: dataSequence, payload: payload, wireLength: segment.wirePayload,
                                           meta: meta, direction: direction,
                                           holdLimit: limits.maxHeldBytesPerDirection, jumpLimit: limits.maxJumpAhead,
                                           consumer: &consumer)
            } else {
                newlyHeld = server.segment(sequence: dataSequence, payload: payload, wireLength: segment.wirePayload,
                                           meta: meta, direction: direction,
                                           holdLimit: limits.maxHeldBytesPerDirection, jumpLimit: limits.maxJumpAhead,
                                           consumer: &consumer)
            }
        }
        if flags.contains(.fin) {
            if fromClient {
                client.fin(sequence: dataSequence, payloadLength: segment.wirePayload, meta: meta, direction: direction, consumer: &consumer)
            } else {
                server.fin(sequence: dataSequence, payloadLength: segment.wirePayload, meta: meta, direction: direction, consumer: &consumer)
            }
        }
        return newlyHeld
    }

    /// Keeps the server's first SYN-ACK's TCP options (the client's SYN options are not
    /// used: they say nothing about the path to the server).
    mutating func recordSynOptions(_ segment: TCPSegment, frame: Span<UInt8>) {
        if server.stats.path.synOptions == nil && segment.source == info.server {
            server.stats.path.synOptions = segment.synOptions(in: frame)
        }
    }

    var heldBytes: Int { client.heldBytes + server.heldBytes }

    var bothClosed: Bool { client.closed && server.closed }

    mutating func flushHeld(meta: ChunkMeta) {
        client.flushHeld(upTo: nil, meta: meta, direction: .clientToServer, consumer: &consumer)
        server.flushHeld(upTo: nil, meta: meta, direction: .serverToClient, consumer: &consumer)
    }

    mutating func finish(_ reason: CloseReason, meta: ChunkMeta) {
        client.finish(reason, meta: meta, direction: .clientToServer, consumer: &consumer)
        server.finish(reason, meta: meta, direction: .serverToClient, consumer: &consumer)
    }
}
