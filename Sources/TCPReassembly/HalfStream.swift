import SMTPCapCore
/// Serial-number arithmetic on 32-bit TCP sequence numbers (RFC 1982): the signed distance
/// from `b` to `a`, correct across the wrap.
@inlinable
func distance(_ a: UInt32, from b: UInt32) -> Int {
    Int(Int32(bitPattern: a &- b))
}

/// Bytes that arrived ahead of a hole, copied out of the capture buffer.
struct HeldSegment {
    var sequence: UInt32
    var bytes: [UInt8]
    /// Bytes this segment stood for on the wire (more than `bytes.count` when the snap
    /// length cut it).
    var wireLength: Int
    var meta: ChunkMeta
}

/// One direction of a connection: ordered delivery, held out-of-order segments, gaps.
struct HalfStream {
    var nextSequence: UInt32 = 0
    var synchronized = false
    var finSequence: UInt32?
    var closed = false
    var held: [HeldSegment] = []
    var heldBytes = 0
    /// Highest acknowledgment the peer sent for this direction's bytes.
    var peerAck: UInt32?
    var stats = DirectionStats()

    mutating func syn(sequence: UInt32) {
        if !synchronized {
            nextSequence = sequence &+ 1
            synchronized = true
        }
    }

    /// A segment's payload. Returns the number of bytes newly held (for the global cap).
    mutating func segment<C: StreamConsumer>(
        sequence: UInt32, payload: Span<UInt8>, wireLength: Int, meta: ChunkMeta,
        direction: Direction, holdLimit: Int, jumpLimit: Int = .max, consumer: inout C
    ) -> Int {
        if closed { return 0 }
        if !synchronized {
            // Mid-connection start: pick up at the first bytes seen.
            nextSequence = sequence
            synchronized = true
        }
        let offset = distance(sequence, from: nextSequence)
        if offset + wireLength <= 0 {
            stats.retransmissions += 1
            return 0
        }
        if offset <= 0 {
            deliver(payload, wireLength: wireLength, trim: -offset, meta: meta, direction: direction, consumer: &consumer)
            drain(direction: direction, consumer: &consumer, meta: meta)
            return 0
        }
        // Far ahead of anything a loss explains, and not acknowledged by the peer: forged or
        // from another life of the connection. Dropped, counted.
        if offset > jumpLimit && !(peerAck.map { distance($0, from: sequence) > 0 } ?? false) {
            stats.outOfWindow += 1
            return 0
        }
        // Ahead of a hole: keep a copy until the hole fills or is declared lost.
        stats.outOfOrder += 1
        if heldBytes + payload.count > holdLimit {
            // Over the per-connection cap: give up on the hole.
            flushHeld(upTo: nil, meta: meta, direction: direction, consumer: &consumer)
            let lost = distance(sequence, from: nextSequence)
            if lost > 0 { emitGap(UInt64(lost), meta: meta, direction: direction, consumer: &consumer) }
            nextSequence = sequence
            deliver(payload, wireLength: wireLength, trim: 0, meta: meta, direction: direction, consumer: &consumer)
            return 0
        }
        return insertHeld(HeldSegment(sequence: sequence, bytes: Array(span: payload), wireLength: wireLength, meta: meta))
    }

    /// Inserts in sequence order; an exact or covered duplicate is dropped (first copy wins),
    /// with a conflict noted when its bytes differ.
    private mutating func insertHeld(_ segment: HeldSegment) -> Int {
        let key = distance(segment.sequence, from: nextSequence)
        var index = held.count
        while index > 0 && distance(held[index - 1].sequence, from: nextSequence) > key { index -= 1 }
        if index > 0 {
            let previous = held[index - 1]
            let previousStart = distance(previous.sequence, from: nextSequence)
            if previousStart + previous.wireLength >= key + segment.wireLength {
                // Entirely covered by an earlier copy.
                let shift = key - previousStart
                let common = min(segment.bytes.count, previous.bytes.count - shift)
                if common > 0 && !previous.bytes[shift..<(shift + common)].elementsEqual(segment.bytes[0..<common]) {
                    stats.conflictingOverlaps += 1
                }
                stats.retransmissions += 1
                return 0
            }
        }
        held.insert(segment, at: index)
        heldBytes += segment.bytes.count
        return segment.bytes.count
    }

    private mutating func deliver<C: StreamConsumer>(
        _ payload: Span<UInt8>, wireLength: Int, trim: Int, meta: ChunkMeta,
        direction: Direction, consumer: inout C
    ) {
        let captured = payload.count
        if trim < captured {
            let slice = payload.extracting(trim...)
            stats.bytes &+= UInt64(slice.count)
            consumer.data(slice, direction, meta)
        }
        let missing = wireLength - max(captured, trim)
        if missing > 0 {
            // Cut by the snap length: the rest of the segment is lost to us.
            emitGap(UInt64(missing), meta: meta, direction: direction, consumer: &consumer)
        }
        nextSequence = nextSequence &+ UInt32(truncatingIfNeeded: wireLength - trim)
    }

    /// Delivers held segments that now fit.
    private mutating func drain<C: StreamConsumer>(direction: Direction, consumer: inout C, meta: ChunkMeta? = nil) {
        var lastMeta = meta
        while let first = held.first, distance(first.sequence, from: nextSequence) <= 0 {
            held.removeFirst()
            heldBytes -= first.bytes.count
            let trim = -distance(first.sequence, from: nextSequence)
            if trim >= first.wireLength {
                stats.retransmissions += 1
                continue
            }
            // An overlap with what was already delivered: first copy wins.
            lastMeta = first.meta
            deliver(first.bytes.span, wireLength: first.wireLength, trim: trim, meta: first.meta,
                    direction: direction, consumer: &consumer)
        }
        checkFin(direction: direction, consumer: &consumer, meta: lastMeta)
    }

    private mutating func emitGap<C: StreamConsumer>(_ lost: UInt64, meta: ChunkMeta, direction: Direction, consumer: inout C) {
        stats.gaps += 1
        stats.lostBytes &+= lost
        consumer.gap(direction, lost: lost, meta)
    }

    /// Gives up on holes: held bytes up to `limit` (all when nil) are delivered, each hole
    /// before them as a gap.
    mutating func flushHeld<C: StreamConsumer>(upTo limit: UInt32?, meta: ChunkMeta, direction: Direction, consumer: inout C) {
        while let first = held.first {
            if let limit, distance(first.sequence, from: limit) > 0 { break }
            let hole = distance(first.sequence, from: nextSequence)
            if hole > 0 {
                emitGap(UInt64(hole), meta: first.meta, direction: direction, consumer: &consumer)
                nextSequence = first.sequence
            }
            drain(direction: direction, consumer: &consumer, meta: meta)
        }
    }

    /// The peer acknowledged up to `ack`: any hole before that point was lost by the capture.
    mutating func peerAcknowledged<C: StreamConsumer>(_ ack: UInt32, meta: ChunkMeta, direction: Direction,
                                                      jumpLimit: Int = .max, consumer: inout C) {
        if let previous = peerAck, distance(ack, from: previous) <= 0 { return }
        peerAck = ack
        guard synchronized, distance(ack, from: nextSequence) > 0 else { return }
        if !held.isEmpty {
            flushHeld(upTo: ack, meta: meta, direction: direction, consumer: &consumer)
        } else if distance(ack, from: nextSequence) > jumpLimit, !closed {
            // The peer took far more than the capture showed (segments dropped as out of
            // window were real after all): resume at the acknowledged point.
            let lost = distance(ack, from: nextSequence)
            emitGap(UInt64(lost), meta: meta, direction: direction, consumer: &consumer)
            nextSequence = ack
        }
    }

    mutating func fin<C: StreamConsumer>(sequence: UInt32, payloadLength: Int, meta: ChunkMeta, direction: Direction, consumer: inout C) {
        stats.finSeen = true
        if !synchronized {
            nextSequence = sequence &+ UInt32(truncatingIfNeeded: payloadLength)
            synchronized = true
        }
        if finSequence == nil { finSequence = sequence &+ UInt32(truncatingIfNeeded: payloadLength) }
        checkFin(direction: direction, consumer: &consumer, meta: meta)
    }

    private mutating func checkFin<C: StreamConsumer>(direction: Direction, consumer: inout C, meta: ChunkMeta? = nil) {
        guard !closed, let finSequence, held.isEmpty, distance(finSequence, from: nextSequence) <= 0 else { return }
        closed = true
        consumer.closed(direction, .fin, meta ?? ChunkMeta(frame: 0, timestamp: .zero))
    }

    /// Ends the direction: every hole becomes a gap, then the consumer hears `reason`.
    mutating func finish<C: StreamConsumer>(_ reason: CloseReason, meta: ChunkMeta, direction: Direction, consumer: inout C) {
        guard !closed else { return }
        flushHeld(upTo: nil, meta: meta, direction: direction, consumer: &consumer)
        if closed { return }  // the FIN became deliverable
        // Bytes the peer acknowledged that the capture never showed.
        if synchronized, let peerAck {
            var end = peerAck
            if let finSequence, distance(end, from: finSequence) > 0 { end = finSequence }
            let missing = distance(end, from: nextSequence)
            // One acknowledged byte past the data with no FIN seen is the FIN itself (it takes
            // a sequence number), not lost data.
            if missing > 1 || (missing == 1 && finSequence != nil) {
                emitGap(UInt64(missing), meta: meta, direction: direction, consumer: &consumer)
                nextSequence = end
            }
        } else if synchronized, let finSequence {
            let missing = distance(finSequence, from: nextSequence)
            if missing > 0 {
                emitGap(UInt64(missing), meta: meta, direction: direction, consumer: &consumer)
                nextSequence = finSequence
            }
        }
        closed = true
        let why: CloseReason = (reason == .endOfCapture && finSequence != nil) ? .fin : reason
        consumer.closed(direction, why, meta)
    }
}
