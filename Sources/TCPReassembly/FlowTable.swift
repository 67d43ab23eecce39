import PacketDecoding
import SMTPCapCore

/// What a flow-table slot holds (see `FlowTable.state`).
enum SlotState {
    static let active: UInt8 = 0
    static let retired: UInt8 = 1
    static let dormant: UInt8 = 2
}

/// Tracks TCP connections, reassembles each direction and hands ordered bytes, gaps and
/// closes to one consumer per connection, made by the factory.
public struct FlowTable<Factory: StreamFactory> {
    public typealias Consumer = Factory.Consumer

    public var factory: Factory
    public let limits: ReassemblyLimits
    /// Ports that mark the server side when no handshake was seen.
    public var serverPorts: Set<UInt16>
    public private(set) var stats = ReassemblyStats()

    private var slots: [Flow<Consumer>?] = []
    /// Per slot, beside the flows so scans for expiry and eviction read no flow.
    private var lastSeen: [Timestamp] = []
    private var ids: [UInt64] = []
    /// Per slot, the flow key's context number (read by `openContexts` without a flow copy).
    private var contexts: [UInt32] = []
    /// Per slot, one of `SlotState`'s values. Retired: the connection was evicted for memory
    /// and reported; its slot stays (without buffers) so the rest of its packets are
    /// recognized and dropped. Dormant: idle past the timeout, kept for one timeout more; a
    /// packet in that time resumes it (and it is marked resumed), else it is ended as idle.
    private var state: [UInt8] = []
    private var freeSlots: [Int] = []
    private var index = FlowIndex()
    /// Connections evicted because the table was full, as 64-bit fingerprints of their keys
    /// (`hashValue`: SipHash, seeded per process) in a ring four times the table's size: the
    /// rest of such a connection is dropped (counted as stray), not taken for a new one, which
    /// would evict another, and so on. About 24 bytes per entry.
    /// Fingerprint -> its position in the ring (a fingerprint forgotten or evicted again is
    /// not dropped when an older ring entry of it is overwritten).
    private var evicted: [Int: Int] = [:]
    private var evictedRing: [Int] = []
    private var evictedRingNext = 0
    private var heldTotal = 0
    private var bufferedTotal = 0
    /// Per slot: the consumer's buffered bytes as counted in `bufferedTotal`.
    private var buffered: [Int] = []
    private var nextID: UInt64 = 1
    private var lastExpiryCheck: Int64 = Int64.min
    private var now = Timestamp.zero

    public init(factory: Factory, limits: ReassemblyLimits = ReassemblyLimits(), serverPorts: Set<UInt16>) {
        self.factory = factory
        self.limits = limits
        self.serverPorts = serverPorts
    }

    public var openConnections: Int { index.count }

    /// The context numbers of the connections in the table (those whose descriptions must be
    /// kept).
    public var openContexts: Set<UInt32> {
        var set = Set<UInt32>()
        for slot in ids.indices where ids[slot] != 0 && contexts[slot] != 0 { set.insert(contexts[slot]) }
        return set
    }

    /// Feeds one decoded segment; `frame` is the captured frame it was decoded from.
    public mutating func process(_ segment: TCPSegment, frame: Span<UInt8>, meta: ChunkMeta) {
        now = meta.timestamp
        // Forward only: capture times that jump back and forth must not rescan every second.
        if meta.timestamp.seconds > lastExpiryCheck {
            lastExpiryCheck = meta.timestamp.seconds
            expireIdle(now: meta.timestamp)
        }
        let (key, _) = FlowKey.canonical(source: segment.source, destination: segment.destination, context: segment.context)
        let payload = frame.extracting(segment.payloadOffset..<(segment.payloadOffset + segment.capturedPayload))

        var slot: Int
        let total = heldTotal, cap = limits.maxHeldBytesTotal
        if let existing = index[key] {
            slot = existing
            let admitted: Flow<Consumer>.Handled
            if state[slot] != SlotState.retired {
                if state[slot] == SlotState.dormant {
                    let opening = segment.flags.contains(.syn) && !segment.flags.contains(.ack)
                    if !opening, case .accept = slots[slot]!.admission(of: segment) {
                        wake(slot: slot, meta: meta)
                    } else {
                        // A new connection on the 4-tuple, or a packet the old one would not
                        // take: the dormant one ends as idle and the packet is taken as for a
                        // connection not seen before.
                        stats.expired += 1
                        end(slot: slot, reason: .idle, meta: meta)
                        return process(segment, frame: frame, meta: meta)
                    }
                }
                // The common case: one call admits the packet and handles it.
                admitted = slots[slot]!.admitAndHandle(segment, payload: payload, meta: meta, limits: limits,
                                                       heldTotalOver: { total + $0 > cap })
            } else {
                switch slots[slot]!.admission(of: segment) {
                case .accept:
                    // Evicted for memory: the rest of the connection is dropped.
                    lastSeen[slot] = meta.timestamp
                    if segment.wirePayload > 0 { stats.strayPackets += 1 }
                    if segment.flags.contains(.rst) { end(slot: slot, reason: .rst, meta: meta) }
                    return
                case .reused: admitted = .reused
                case .stray: admitted = .stray
                }
            }
            switch admitted {
            case .handled(let outcome):
                if _slowPath(segment.flags.contains(.syn)) { slots[slot]!.recordSynOptions(segment, frame: frame) }
                account(outcome, slot: slot, segment: segment, meta: meta)
                return
            case .reused:
                end(slot: slot, reason: .fin, meta: meta)
                slot = create(segment, payload: payload, key: key, meta: meta)
            case .stray:
                if segment.wirePayload > 0 { stats.strayPackets += 1 }
                return
            }
        } else {
            // Nothing to start from: a lone RST or a pure ACK of a connection we never saw (the
            // last ACK after both FINs is the common case: ignored without a count).
            if segment.flags.contains(.rst) || (segment.wirePayload == 0 && !segment.flags.contains(.syn)) {
                if segment.wirePayload > 0 { stats.strayPackets += 1 }
                return
            }
            if !evicted.isEmpty && evicted[key.hashValue] != nil {
                if segment.flags.contains(.syn) && !segment.flags.contains(.ack) {
                    evicted[key.hashValue] = nil  // a new connection on the same 4-tuple
                } else {
                    if segment.wirePayload > 0 { stats.strayPackets += 1 }
                    return
                }
            }
            slot = create(segment, payload: payload, key: key, meta: meta)
        }

        let heldNow = heldTotal  // creating may have evicted (and freed) others
        let outcome = slots[slot]!.handle(segment, payload: payload, meta: meta, limits: limits) { heldNow + $0 > cap }
        if _slowPath(segment.flags.contains(.syn)) { slots[slot]!.recordSynOptions(segment, frame: frame) }
        account(outcome, slot: slot, segment: segment, meta: meta)
    }

    /// Books what a packet did to a flow: its clock, held and buffered bytes, and its end.
    @inline(__always)
    private mutating func account(_ outcome: Flow<Consumer>.Outcome, slot: Int, segment: TCPSegment, meta: ChunkMeta) {
        lastSeen[slot] = meta.timestamp
        heldTotal += outcome.newlyHeld
        if outcome.heldBeforeFlush > 0 {
            stats.heldOverflows += 1
            heldTotal -= outcome.heldBeforeFlush
        }
        bufferedTotal += outcome.bufferedDelta
        buffered[slot] += outcome.bufferedDelta
        if segment.flags.contains(.rst) {
            end(slot: slot, reason: .rst, meta: meta)
        } else if outcome.bothClosed {
            end(slot: slot, reason: .fin, meta: meta)
        } else if bufferedTotal > limits.maxBufferedBytesTotal {
            retireLargest(meta: meta)
        }
    }

    /// The consumers' buffers passed their budget: the connections holding the most are
    /// reported as evicted and retired until an eighth of the budget is free (so this runs
    /// once per eighth of growth, not per packet).
    private mutating func retireLargest(meta: ChunkMeta) {
        var holders: [(bytes: Int, slot: Int)] = []
        for slot in buffered.indices where buffered[slot] > 0 && ids[slot] != 0 && state[slot] != SlotState.retired {
            holders.append((buffered[slot], slot))
        }
        holders.sort { $0.bytes != $1.bytes ? $0.bytes > $1.bytes : ids[$0.slot] < ids[$1.slot] }
        let target = limits.maxBufferedBytesTotal - limits.maxBufferedBytesTotal / 8
        for holder in holders {
            if bufferedTotal <= target { break }
            stats.evictedForMemory += 1
            retire(slot: holder.slot, meta: meta)
        }
    }

    private func isServerPort(_ port: UInt16) -> Bool { serverPorts.contains(port) }

    private mutating func create(_ segment: TCPSegment, payload: Span<UInt8>, key: FlowKey, meta: ChunkMeta) -> Int {
        if index.count >= limits.maxConnections { evictOldest() }
        var client = segment.source
        var server = segment.destination
        var evidence = ServerEvidence.guess
        let syn = segment.flags.contains(.syn)
        if syn && !segment.flags.contains(.ack) {
            evidence = .handshake
        } else if syn {
            swap(&client, &server)
            evidence = .handshake
        } else if isServerPort(segment.destination.port) != isServerPort(segment.source.port) {
            if isServerPort(segment.source.port) { swap(&client, &server) }
            evidence = .port
        } else if payload.count >= 4, payload[0] == UInt8(ascii: "2"), payload[1] == UInt8(ascii: "2"),
                  payload[2] == UInt8(ascii: "0"), payload[3] == UInt8(ascii: " ") || payload[3] == UInt8(ascii: "-") {
            swap(&client, &server)
            evidence = .greeting
        } else if payload.count >= 4, (payload[0] | 0x20) >= UInt8(ascii: "a"), (payload[0] | 0x20) <= UInt8(ascii: "z") {
            evidence = .greeting  // the sender opens with a command
        } else if segment.source.port < segment.destination.port {
            swap(&client, &server)
        }
        let info = ConnectionInfo(id: nextID, client: client, server: server, serverEvidence: evidence,
                                  handshakeSeen: syn && !segment.flags.contains(.ack),
                                  firstFrame: meta.frame, start: meta.timestamp, context: segment.context)
        nextID += 1
        stats.connections += 1
        let flow = Flow(info: info, consumer: factory.makeConsumer(info), lastSeen: meta.timestamp)
        let slot: Int
        if let free = freeSlots.popLast() {
            slots[free] = consume flow
            lastSeen[free] = meta.timestamp
            ids[free] = info.id
            contexts[free] = info.context
            state[free] = SlotState.active
            buffered[free] = 0
            slot = free
        } else {
            slots.append(consume flow)
            lastSeen.append(meta.timestamp)
            ids.append(info.id)
            contexts.append(info.context)
            state.append(SlotState.active)
            buffered.append(0)
            slot = slots.count - 1
        }
        index.insert(key, slot: slot)
        return slot
    }

    private mutating func end(slot: Int, reason: CloseReason, meta: ChunkMeta, rememberEviction: Bool = false) {
        guard var flow = slots[slot].take() else { return }
        heldTotal -= flow.heldBytes
        bufferedTotal -= flow.accountedBuffered
        buffered[slot] = 0
        stats.outOfWindow += UInt64(flow.client.stats.outOfWindow + flow.server.stats.outOfWindow)
        flow.finish(reason, meta: meta)
        let (key, _) = FlowKey.canonical(source: flow.info.client, destination: flow.info.server, context: flow.info.context)
        index.remove(key)
        if rememberEviction { rememberEvicted(key) }
        ids[slot] = 0
        freeSlots.append(slot)
        if state[slot] == SlotState.retired { return }  // reported when it was evicted
        factory.finished(&flow.consumer, info: flow.info, client: flow.client.stats, server: flow.server.stats,
                         end: flow.lastSeen)
    }

    /// Reports the connection as evicted and frees its buffers, keeping its slot and key.
    private mutating func retire(slot: Int, meta: ChunkMeta) {
        guard var flow = slots[slot].take() else { return }
        heldTotal -= flow.heldBytes
        bufferedTotal -= flow.accountedBuffered
        buffered[slot] = 0
        stats.outOfWindow += UInt64(flow.client.stats.outOfWindow + flow.server.stats.outOfWindow)
        flow.finish(.evicted, meta: meta)
        let (client, server) = (flow.client.stats, flow.server.stats)
        factory.finished(&flow.consumer, info: flow.info, client: client, server: server, end: flow.lastSeen)
        flow.consumer = factory.makeConsumer(flow.info)
        flow.client = HalfStream()
        flow.server = HalfStream()
        flow.accountedBuffered = 0
        slots[slot] = flow
        state[slot] = SlotState.retired
    }

    /// Moves the table's clock without a packet (live capture on a quiet interface): ends the
    /// connections idle past the timeout at `time`.
    public mutating func advance(to time: Timestamp) {
        guard time > now else { return }
        now = time
        if time.seconds > lastExpiryCheck {
            lastExpiryCheck = time.seconds
            expireIdle(now: time)
        }
    }

    /// Connections idle longer than the timeout go dormant; dormant ones idle for a second
    /// timeout are ended (a retired one at the first: it has nothing left to resume).
    private mutating func expireIdle(now: Timestamp) {
        let deadline = now.seconds - limits.idleTimeoutSeconds
        var stale: [Int] = []
        for slot in ids.indices where ids[slot] != 0 && lastSeen[slot].seconds < deadline {
            // Checked as packets come: a connection may have been idle for both timeouts by now.
            if state[slot] == SlotState.retired || lastSeen[slot].seconds < deadline - limits.idleTimeoutSeconds {
                stale.append(slot)
            } else {
                state[slot] = SlotState.dormant
            }
        }
        guard !stale.isEmpty else { return }
        stale.sort { ids[$0] < ids[$1] }
        for slot in stale {
            if state[slot] != SlotState.retired { stats.expired += 1 }  // a retired one was counted when evicted
            end(slot: slot, reason: .idle, meta: ChunkMeta(frame: 0, timestamp: now))
        }
    }

    /// A dormant connection's next packet: it goes on, and its consumer is told how long the
    /// pause was.
    private mutating func wake(slot: Int, meta: ChunkMeta) {
        state[slot] = SlotState.active
        stats.resumed += 1
        let pause = meta.timestamp.seconds - lastSeen[slot].seconds
        slots[slot]!.consumer.resumed(afterIdleSeconds: pause, meta)
    }

    /// The table is full: end the least recently active eighth of it in one pass, so a flood
    /// of new connections costs amortised O(1) per packet. Connections already retired (reported
    /// when their buffers were evicted) go first and are not counted again.
    private mutating func evictOldest() {
        var candidates: [(retired: Bool, seen: Timestamp, id: UInt64, slot: Int)] = []
        candidates.reserveCapacity(index.count)
        for slot in ids.indices where ids[slot] != 0 {
            candidates.append((state[slot] != SlotState.retired, lastSeen[slot], ids[slot], slot))
        }
        candidates.sort { a, b in
            if a.retired != b.retired { return !a.retired }  // field holds "not retired": retired first
            return a.seen != b.seen ? a.seen < b.seen : a.id < b.id
        }
        let count = max(1, candidates.count / 8)
        for candidate in candidates.prefix(count) {
            if state[candidate.slot] != SlotState.retired { stats.evicted += 1 }
            end(slot: candidate.slot, reason: .evicted, meta: ChunkMeta(frame: 0, timestamp: now), rememberEviction: true)
        }
    }

    private mutating func rememberEvicted(_ key: FlowKey) {
        let fingerprint = key.hashValue
        let capacity = max(256, limits.maxConnections * 4)
        let position: Int
        if evictedRing.count < capacity {
            position = evictedRing.count
            evictedRing.append(fingerprint)
        } else {
            position = evictedRingNext
            let old = evictedRing[position]
            if evicted[old] == position { evicted[old] = nil }
            evictedRing[position] = fingerprint
            evictedRingNext = (evictedRingNext + 1) % capacity
        }
        evicted[fingerprint] = position
    }

    /// Ends every open connection (end of capture), oldest first.
    public mutating func finishAll(reason: CloseReason = .endOfCapture) {
        let open = ids.indices.filter { ids[$0] != 0 }.sorted { ids[$0] < ids[$1] }
        for slot in open {
            // Idle past the timeout when the capture ended: that, not the end, is why it ended.
            let dormant = state[slot] == SlotState.dormant
            if dormant { stats.expired += 1 }
            end(slot: slot, reason: dormant ? .idle : reason, meta: ChunkMeta(frame: 0, timestamp: lastSeen[slot]))
        }
    }
}
