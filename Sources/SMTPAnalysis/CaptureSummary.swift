import PacketDecoding
import TCPReassembly

/// Per-group STARTTLS tallies: how often sessions' EHLO replies offered it.
public struct OfferTally: Sendable, Hashable {
    public var sessions = 0
    /// Sessions with at least one successful EHLO reply in plaintext.
    public var ehloSessions = 0
    public var offered = 0
    public var stripped = 0
    public var encrypted = 0
    public var plaintextMessages = 0
    public init() {}

    mutating func add(_ t: OfferTally) {
        sessions += t.sessions
        ehloSessions += t.ehloSessions
        offered += t.offered
        stripped += t.stripped
        encrypted += t.encrypted
        plaintextMessages += t.plaintextMessages
    }
}

/// The same server seen with and without STARTTLS in one capture.
public struct Inconsistency: Sendable, Hashable {
    public var server: String
    public var offeredIn: [UInt64]
    public var missingIn: [UInt64]
    public var offeredFamilies: Set<Int>
    public var missingFamilies: Set<Int>
}

/// Aggregates finished sessions into the capture summary. Memory is bounded: at most
/// `maxGroups` servers are tracked, and session lists are capped.
public struct CaptureSummary: Sendable {
    public static let maxGroups = 10_000
    public static let maxListed = 20

    public var sessions = 0
    public var verdicts: [Verdict: Int] = [:]
    public var findings: [FindingCode: Int] = [:]
    public var plaintextMessages = 0
    /// Tallies per server address, as `198.51.100.2:25` (`[2001:db8::25]:25`).
    public var byServer: [String: OfferTally] {
        Dictionary(uniqueKeysWithValues: serverTallies.map { ($0.key.description, $0.value) })
    }
    var serverTallies: [Endpoint: OfferTally] = [:]
    public var byFamily: [Int: OfferTally] = [:]
    public var serversNotTracked = 0

    struct Group {
        var offeredIn: [UInt64] = []
        var missingIn: [UInt64] = []
        var offeredCount = 0
        var missingCount = 0
        var offeredFamilies: Set<Int> = []
        var missingFamilies: Set<Int> = []
    }
    var groups: [String: Group] = [:]
    var groupOrder: [String] = []

    public init() {}

    public mutating func add(_ r: SessionRecord) {
        sessions += 1
        verdicts[r.verdict, default: 0] += 1
        for f in r.findings { findings[f.code, default: 0] += 1 }
        plaintextMessages += r.messages.count + r.messagesNotListed

        let plaintextEHLO = r.ehlo.filter { e in
            e.code / 100 == 2 && !(r.starttls.reply == 220 && r.starttls.frame.map { e.frame > $0 } == true)
        }
        let offered = plaintextEHLO.contains { $0.starttls }
        var tally = { (t: inout OfferTally) in
            t.sessions += 1
            if !plaintextEHLO.isEmpty { t.ehloSessions += 1 }
            if offered { t.offered += 1 }
            if r.verdict == .stripped { t.stripped += 1 }
            if r.verdict == .encrypted { t.encrypted += 1 }
            t.plaintextMessages += r.messages.count + r.messagesNotListed
        }
        if serverTallies[r.server] != nil || serverTallies.count < Self.maxGroups {
            tally(&serverTallies[r.server, default: OfferTally()])
        } else {
            serversNotTracked += 1
        }
        tally(&byFamily[r.ipVersion, default: OfferTally()])
        tally = { _ in }

        // Group by the name the server declares; else by its address.
        guard !plaintextEHLO.isEmpty else { return }
        let identity = r.serverName.map { "\($0) (port \(r.server.port))" } ?? r.server.description
        if groups[identity] == nil {
            guard groups.count < Self.maxGroups else { return }
            groupOrder.append(identity)
        }
        let id = r.id, family = r.ipVersion
        let listed = Self.maxListed
        func count(_ g: inout Group) {
            if offered {
                g.offeredCount += 1
                g.offeredFamilies.insert(family)
                if g.offeredIn.count < listed { g.offeredIn.append(id) }
            } else {
                g.missingCount += 1
                g.missingFamilies.insert(family)
                if g.missingIn.count < listed { g.missingIn.append(id) }
            }
        }
        count(&groups[identity, default: Group()])
    }

    /// Adds another summary's tallies, as if its sessions had been added after this one's
    /// (several files analyzed apart, merged in file order).
    public mutating func merge(_ other: CaptureSummary) {
        sessions += other.sessions
        for (k, v) in other.verdicts { verdicts[k, default: 0] += v }
        for (k, v) in other.findings { findings[k, default: 0] += v }
        plaintextMessages += other.plaintextMessages
        serversNotTracked += other.serversNotTracked
        for (server, t) in other.serverTallies.sorted(by: { $0.key < $1.key }) {
            if serverTallies[server] != nil || serverTallies.count < Self.maxGroups {
                serverTallies[server, default: OfferTally()].add(t)
            } else {
                serversNotTracked += t.sessions
            }
        }
        for (family, t) in other.byFamily { byFamily[family, default: OfferTally()].add(t) }
        for key in other.groupOrder {
            guard let g = other.groups[key] else { continue }
            if groups[key] == nil {
                guard groups.count < Self.maxGroups else { continue }
                groupOrder.append(key)
            }
            let listed = Self.maxListed
            func add(_ mine: inout Group) {
                mine.offeredCount += g.offeredCount
                mine.missingCount += g.missingCount
                mine.offeredFamilies.formUnion(g.offeredFamilies)
                mine.missingFamilies.formUnion(g.missingFamilies)
                mine.offeredIn += g.offeredIn.prefix(max(0, listed - mine.offeredIn.count))
                mine.missingIn += g.missingIn.prefix(max(0, listed - mine.missingIn.count))
            }
            add(&groups[key, default: Group()])
        }
    }

    /// Servers that offered STARTTLS in some sessions and not in others: the path, not the
    /// server, removes it.
    public var inconsistencies: [Inconsistency] {
        groupOrder.compactMap { key in
            let g = groups[key]!
            guard g.offeredCount > 0, g.missingCount > 0 else { return nil }
            return Inconsistency(server: key, offeredIn: g.offeredIn, missingIn: g.missingIn,
                                 offeredFamilies: g.offeredFamilies, missingFamilies: g.missingFamilies)
        }
    }

    /// Findings counted for the exit status, the summary-level one included.
    public var totalFindings: Int {
        findings.values.reduce(0, +) + inconsistencies.count
    }
}
