import SMTPCapCore

/// Caps and timeout of IP reassembly. Every cap drops a datagram and counts it; none is fatal.
public struct DefragmentLimits: Sendable {
    /// Datagrams being reassembled at once; past it the oldest are dropped.
    public var maxDatagrams = 4096
    /// Fragments of one datagram: a 64 KiB datagram in 1280-byte IPv6 fragments is 52; the
    /// rest is a flood of tiny ones.
    public var maxFragmentsPerDatagram = 128
    /// Fragment bytes held across all datagrams.
    public var maxHeldBytes = 8 << 20
    /// A datagram not complete this long after its first fragment (capture time) is dropped:
    /// Linux's `ipfrag_time`.
    public var timeoutSeconds: Int64 = 30

    public init() {}

    /// A sixteenth of a memory budget (MiB) for held fragments, and datagrams to match.
    public static func forMemory(mebibytes: Int) -> DefragmentLimits {
        var l = DefragmentLimits()
        l.maxHeldBytes = max(1 << 20, (max(8, mebibytes - 24) << 20) / 16)
        l.maxDatagrams = max(64, l.maxHeldBytes / 2048)
        return l
    }
}

/// Reassembles IPv4 and IPv6 datagrams from their fragments (RFC 791, RFC 8200 §4.5), in
/// capture time. Fragments may come in any order and overlap; where they overlap the first
/// copy wins, and a later copy with other bytes is counted. The complete datagram is handed
/// back with a fresh IP header (no options or extension headers, which reassembly consumed),
/// to be decoded inside the tunnels its fragments came through.
public struct Defragmenter {
    struct Key: Hashable {
        var source: IPAddress
        var destination: IPAddress
        var identification: UInt32
        var proto: UInt8
        var tunnel: TunnelStack
        /// The capture interface (pcapng): the same fragments seen on two interfaces are two
        /// datagrams, one per vantage point.
        var interface: Int32
    }

    struct Datagram {
        var started: Timestamp
        /// Bytes at their datagram offsets; `covered` says which are real.
        var data: [UInt8] = []
        /// Received ranges, sorted and merged.
        var covered: [Range<Int>] = []
        /// The datagram's length, once the last fragment was seen.
        var total: Int?
        var fragments = 0
        var order: UInt64

        var held: Int { data.count }
        var complete: Bool {
            guard let total else { return false }
            return covered.count == 1 && covered[0] == 0..<total
        }
    }

    public let limits: DefragmentLimits
    public private(set) var stats = DefragmentStats()
    var pending: [Key: Datagram] = [:]
    /// Datagrams in the order they began (entries of datagrams gone since are skipped): the
    /// oldest are found without a sort.
    var arrivals: [(order: UInt64, key: Key)] = []
    var arrivalsHead = 0
    var held = 0
    var nextOrder: UInt64 = 0
    var lastExpiry: Int64 = .min

    public init(limits: DefragmentLimits = DefragmentLimits()) {
        self.limits = limits
    }

    public var pendingDatagrams: Int { pending.count }

    /// The largest datagram payload an IP header can describe.
    static let maxPayload = 65_535

    /// Adds one fragment (`frame` is the frame `fragment` was decoded from, inside `tunnel`,
    /// on `interface`). Returns the whole datagram, header first, when this fragment completed
    /// it.
    public mutating func add(_ fragment: IPFragment, frame: Span<UInt8>, tunnel: TunnelStack, interface: Int32 = 0,
                             time: Timestamp) -> [UInt8]? {
        stats.fragments += 1
        // Forward only: capture times that jump back and forth must not rescan every second.
        if time.seconds > lastExpiry {
            lastExpiry = time.seconds
            expire(now: time)
        }
        let key = Key(source: fragment.source, destination: fragment.destination,
                      identification: fragment.identification, proto: fragment.proto, tunnel: tunnel,
                      interface: interface)
        let start = fragment.offset
        let end = start + fragment.payloadLength
        // Cut by the snap length, or past what a header can describe: the datagram cannot be
        // rebuilt.
        guard fragment.capturedLength == fragment.payloadLength, end <= Self.maxPayload,
              fragment.payloadOffset >= 0, fragment.payloadOffset + fragment.capturedLength <= frame.count,
              fragment.payloadLength > 0 || !fragment.more else {
            if let d = pending.removeValue(forKey: key) { held -= d.held }
            stats.dropped += 1
            compactIfSparse()
            return nil
        }
        if pending[key] == nil {
            if pending.count >= limits.maxDatagrams { dropOldest() }
            pending[key] = Datagram(started: time, order: nextOrder)
            arrivals.append((nextOrder, key))
            nextOrder += 1
        }
        let before = pending[key]!.held
        let outcome = Self.insert(into: &pending[key]!, start: start, end: end, more: fragment.more,
                                  bytes: frame.extracting(fragment.payloadOffset..<(fragment.payloadOffset + fragment.capturedLength)))
        held += pending[key]!.held - before
        if outcome.conflict { stats.conflictingOverlaps += 1 }
        if outcome.invalid || pending[key]!.fragments > limits.maxFragmentsPerDatagram {
            drop(key)
            return nil
        }
        while held > limits.maxHeldBytes, !pending.isEmpty { dropOldest() }
        guard let datagram = pending[key], datagram.complete else { return nil }
        pending[key] = nil
        held -= datagram.held
        compactIfSparse()
        stats.reassembled += 1
        stats.usedFragments += UInt64(datagram.fragments)
        return Self.rebuild(key, payload: datagram.data)
    }

    /// Copies the bytes no earlier fragment gave; says whether the rest disagreed and whether
    /// the fragment contradicts the datagram's known end.
    static func insert(into d: inout Datagram, start: Int, end: Int, more: Bool,
                       bytes: Span<UInt8>) -> (conflict: Bool, invalid: Bool) {
        d.fragments += 1
        if !more {
            if let total = d.total, total != end { return (false, true) }
            d.total = end
        }
        if let total = d.total, end > total { return (false, true) }
        if d.data.count < end { d.data.append(contentsOf: repeatElement(0, count: end - d.data.count)) }
        var conflict = false
        var at = start
        // Walk the covered ranges that touch [start, end): copy the holes, compare the rest.
        for range in d.covered where range.upperBound > start && range.lowerBound < end {
            if at < range.lowerBound {
                for i in at..<range.lowerBound { d.data[i] = bytes[i - start] }
            }
            let overlapEnd = min(end, range.upperBound)
            let from = max(at, range.lowerBound)
            if from < overlapEnd, !conflict {
                for i in from..<overlapEnd where d.data[i] != bytes[i - start] {
                    conflict = true
                    break
                }
            }
            at = max(at, overlapEnd)
        }
        if at < end {
            for i in at..<end { d.data[i] = bytes[i - start] }
        }
        if start < end { d.covered = merged(d.covered, start..<end) }
        return (conflict, false)
    }

    static func merged(_ ranges: [Range<Int>], _ new: Range<Int>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var pending = new
        var placed = false
        for r in ranges {
            if r.upperBound < pending.lowerBound {
                out.append(r)
            } else if pending.upperBound < r.lowerBound {
                if !placed { out.append(pending); placed = true }
                out.append(r)
            } else {
                pending = min(r.lowerBound, pending.lowerBound)..<max(r.upperBound, pending.upperBound)
            }
        }
        if !placed { out.append(pending) }
        return out
    }

    /// A minimal IPv4 (20 bytes) or IPv6 (40 bytes) header, then the payload.
    static func rebuild(_ key: Key, payload: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        if key.source.isIPv6 {
            out.reserveCapacity(40 + payload.count)
            let length = payload.count <= 65_535 ? payload.count : 0
            out += [0x60, 0, 0, 0, UInt8(length >> 8), UInt8(length & 0xff), key.proto, 64]
            for address in [key.source, key.destination] {
                for word in [address.high, address.low] {
                    for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt64(shift))) }
                }
            }
        } else {
            out.reserveCapacity(20 + payload.count)
            let total = min(65_535, 20 + payload.count)
            let id = key.identification
            out += [0x45, 0, UInt8(total >> 8), UInt8(total & 0xff), UInt8((id >> 8) & 0xff), UInt8(id & 0xff),
                    0, 0, 64, key.proto, 0, 0]
            for address in [key.source, key.destination] {
                let v = UInt32(truncatingIfNeeded: address.low)
                out += [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
            }
        }
        out += payload
        return out
    }

    mutating func drop(_ key: Key) {
        if let d = pending.removeValue(forKey: key) {
            held -= d.held
            stats.dropped += 1
        }
        compactIfSparse()
    }

    /// Datagrams completed, dropped or timed out leave their entries in `arrivals` behind:
    /// they go when they outnumber the datagrams pending four to one (amortised O(1)).
    mutating func compactIfSparse() {
        if arrivals.count - arrivalsHead > 4 * pending.count + 64 { compactArrivals() }
    }

    /// Over a cap: the oldest eighth of the datagrams goes (at least one), so a flood costs
    /// amortised O(1) per fragment.
    mutating func dropOldest() {
        var toDrop = max(1, pending.count / 8)
        while toDrop > 0, arrivalsHead < arrivals.count {
            let (order, key) = arrivals[arrivalsHead]
            arrivalsHead += 1
            guard pending[key]?.order == order else { continue }  // gone already
            drop(key)
            toDrop -= 1
        }
        // Forget the entries passed, once they are half the list.
        if arrivalsHead > 64, arrivalsHead * 2 > arrivals.count {
            arrivals.removeFirst(arrivalsHead)
            arrivalsHead = 0
        }
    }

    mutating func compactArrivals() {
        arrivals = arrivals[arrivalsHead...].filter { pending[$0.key]?.order == $0.order }
        arrivalsHead = 0
    }

    /// Drops the datagrams older than the timeout.
    public mutating func expire(now: Timestamp) {
        let deadline = now.seconds - limits.timeoutSeconds
        let stale = pending.filter { $0.value.started.seconds < deadline }.map(\.key)
        for key in stale {
            if let d = pending.removeValue(forKey: key) {
                held -= d.held
                stats.incomplete += 1
            }
        }
        if !stale.isEmpty { compactArrivals() }
    }

    /// End of capture: what is left was never completed.
    public mutating func finish() {
        stats.incomplete += UInt64(pending.count)
        pending.removeAll()
        arrivals.removeAll()
        arrivalsHead = 0
        held = 0
    }
}
