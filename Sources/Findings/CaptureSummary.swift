import SMTPCapCore
import SMTPMachine

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
    /// Counts by verdict and by finding code, in declaration order (arrays: a session adds to
    /// them without hashing).
    var verdictCounts = [Int](repeating: 0, count: Verdict.allCases.count)
    var findingCounts = [Int](repeating: 0, count: FindingCode.allCases.count)
    public var verdicts: [Verdict: Int] {
        var d: [Verdict: Int] = [:]
        for (i, v) in Verdict.allCases.enumerated() where verdictCounts[i] > 0 { d[v] = verdictCounts[i] }
        return d
    }
    public var findings: [FindingCode: Int] {
        var d: [FindingCode: Int] = [:]
        for (i, c) in FindingCode.allCases.enumerated() where findingCounts[i] > 0 { d[c] = findingCounts[i] }
        return d
    }
    public var plaintextMessages = 0
    /// Tallies per server address, as `198.51.100.2:25` (`[2001:db8::25]:25`).
    public var byServer: [String: OfferTally] {
        Dictionary(uniqueKeysWithValues: serverTallies.map { ($0.key.description, $0.value) })
    }
    var serverTallies: [Endpoint: OfferTally] = [:]
    /// IPv4 and IPv6 tallies; `byFamily` lists the families seen.
    var familyTallies: (v4: OfferTally?, v6: OfferTally?)
    public var byFamily: [Int: OfferTally] {
        var d: [Int: OfferTally] = [:]
        if let t = familyTallies.v4 { d[4] = t }
        if let t = familyTallies.v6 { d[6] = t }
        return d
    }
    public var serversNotTracked = 0

    struct Group {
        var offeredIn: [UInt64] = []
        var missingIn: [UInt64] = []
        var offeredCount = 0
        var missingCount = 0
        var offeredFamilies = Families()
        var missingFamilies = Families()
    }
    /// IP versions (4, 6) as bits: a session adds to them without hashing.
    struct Families {
        var bits: UInt8 = 0
        mutating func insert(_ version: Int) { bits |= version == 6 ? 2 : 1 }
        mutating func formUnion(_ other: Families) { bits |= other.bits }
        var set: Set<Int> { Set((bits & 1 != 0 ? [4] : []) + (bits & 2 != 0 ? [6] : [])) }
    }
    /// A server as it names itself (its EHLO/greeting name and port), else its address.
    struct GroupKey: Hashable, Sendable {
        var name: String?
        var server: Endpoint

        init(name: String?, server: Endpoint) {
            self.name = name
            // Sessions naming the same server on the same port group together across addresses.
            self.server = name == nil ? server : Endpoint(address: IPAddress(ipv4: 0), port: server.port)
        }

        var identity: String { name.map { "\($0) (port \(server.port))" } ?? server.description }
    }
    var groups: [GroupKey: Group] = [:]
    var groupOrder: [GroupKey] = []

    public init() {}

    public mutating func add(_ r: SessionRecord) {
        sessions += 1
        verdictCounts[r.verdict.rank] += 1
        for f in r.findings { findingCounts[f.code.rank] += 1 }
        plaintextMessages += r.messages.count + r.messagesNotListed

        // EHLO replies in plaintext (before an accepted STARTTLS), and whether one offered it.
        var plaintextEHLO = false
        var offered = false
        for e in r.ehlo where e.code / 100 == 2 && !(r.starttls.reply == 220 && r.starttls.frame.map { e.frame > $0 } == true) {
            plaintextEHLO = true
            if e.starttls { offered = true }
        }
        func tally(_ t: inout OfferTally) {
            t.sessions += 1
            if plaintextEHLO { t.ehloSessions += 1 }
            if offered { t.offered += 1 }
            if r.verdict == .stripped { t.stripped += 1 }
            if r.verdict == .encrypted { t.encrypted += 1 }
            t.plaintextMessages += r.messages.count + r.messagesNotListed
        }
        if serverTallies.count < Self.maxGroups || serverTallies[r.server] != nil {
            tally(&serverTallies[r.server, default: OfferTally()])
        } else {
            serversNotTracked += 1
        }
        if r.ipVersion == 6 {
            tally(&familyTallies.v6[default: OfferTally()])
        } else {
            tally(&familyTallies.v4[default: OfferTally()])
        }

        // Group by the name the server declares; else by its address.
        guard plaintextEHLO else { return }
        let identity = GroupKey(name: r.serverName, server: r.server)
        // One lookup for a server seen before (the common case), not two.
        let index: Dictionary<GroupKey, Group>.Index
        if let known = groups.index(forKey: identity) {
            index = known
        } else {
            guard groups.count < Self.maxGroups else { return }
            groupOrder.append(identity)
            groups[identity] = Group()
            index = groups.index(forKey: identity)!
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
        count(&groups.values[index])
    }

    /// Adds another summary's tallies, as if its sessions had been added after this one's
    /// (several files analyzed apart, merged in file order).
    public mutating func merge(_ other: CaptureSummary) {
        sessions += other.sessions
        for i in verdictCounts.indices { verdictCounts[i] += other.verdictCounts[i] }
        for i in findingCounts.indices { findingCounts[i] += other.findingCounts[i] }
        plaintextMessages += other.plaintextMessages
        serversNotTracked += other.serversNotTracked
        for (server, t) in other.serverTallies.sorted(by: { $0.key < $1.key }) {
            if serverTallies[server] != nil || serverTallies.count < Self.maxGroups {
                serverTallies[server, default: OfferTally()].add(t)
            } else {
                serversNotTracked += t.sessions
            }
        }
        if let t = other.familyTallies.v4 { familyTallies.v4[default: OfferTally()].add(t) }
        if let t = other.familyTallies.v6 { familyTallies.v6[default: OfferTally()].add(t) }
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
            return Inconsistency(server: key.identity, offeredIn: g.offeredIn, missingIn: g.missingIn,
                                 offeredFamilies: g.offeredFamilies.set, missingFamilies: g.missingFamilies.set)
        }
    }

    /// Findings counted for the exit status, the summary-level one included.
    /// Findings per code in declaration order, the cross-session `starttls-inconsistent`
    /// included.
    public var countsByCode: [(code: FindingCode, count: Int)] {
        FindingCode.allCases.map { code in
            (code, code == .starttlsInconsistent ? inconsistencies.count : findingCounts[code.rank])
        }
    }

    public var totalFindings: Int {
        findingCounts.reduce(0, +) + inconsistencies.count
    }
}

extension Optional {
    /// The wrapped value, set to `value` first when there is none (`dict[k, default:]` for an
    /// optional field).
    subscript(default value: @autoclosure () -> Wrapped) -> Wrapped {
        get { self ?? value() }
        set { self = newValue }
    }
}
