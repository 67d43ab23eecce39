import SMTPCapCore
import SMTPMachine
import TLSHandshake

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

/// How one session reached the server: enough to tell two paths apart.
public struct PathSignature: Sendable, Hashable {
    public var ipVersion: Int
    public var ttl: UInt8
    public var hops: Int
    public var synAck: TCPOptionsPrint?
    /// The first session seen on this path.
    public var session: UInt64

    /// Same path: family, hops and SYN-ACK options (the session is only an example).
    func samePath(_ o: PathSignature) -> Bool {
        ipVersion == o.ipVersion && hops == o.hops && synAck == o.synAck
    }
    /// The same hops and the same SYN-ACK, whatever the family: IPv6's MSS is 20 bytes less
    /// than IPv4's for the same link (its header is 20 bytes longer), so it is compared as the
    /// IPv4 value.
    func sameRoute(_ o: PathSignature) -> Bool { hops == o.hops && sameSynAck(o) }
    /// The same SYN-ACK as far as the server chose it: its MSS (IPv6's compared as IPv4's)
    /// and its window scale. SACK and timestamps answer what the client's SYN offered, so
    /// they say nothing of the server; a SYN-ACK not seen matches any.
    func sameSynAck(_ o: PathSignature) -> Bool {
        guard let x = synAck, let y = o.synAck else { return true }
        let mx = Int(x.mss) + (ipVersion == 6 ? 20 : 0), my = Int(y.mss) + (o.ipVersion == 6 ? 20 : 0)
        if x.mss != 0 && y.mss != 0 && mx != my { return false }
        if x.hasWindowScale && y.hasWindowScale && x.windowScale != y.windowScale { return false }
        return true
    }

    var familyName: String { ipVersion == 6 ? "IPv6" : "IPv4" }
}

/// Sessions to one server without STARTTLS arrived over another path than those with it.
public struct PathInconsistency: Sendable, Hashable {
    public var server: String
    public var without: PathSignature
    public var with: PathSignature

    public var message: String {
        var m = "\(without.familyName) answered \(PathEvidence.hopsText(without.hops, ttl: without.ttl)) without STARTTLS"
        m += ", \(with.familyName) from \(PathEvidence.hopsText(with.hops, ttl: with.ttl)) with it"
        if !without.sameSynAck(with) {
            m += "; SYN-ACK \(without.synAck?.description ?? "unseen") against \(with.synAck?.description ?? "unseen")"
        }
        let family = without.ipVersion != with.ipVersion ? without.familyName + " " : ""
        m += ": a box on the \(family)path answers for \(server)"
        return m
    }
}

/// One certificate as a server presented it on one path.
public struct CertificateSighting: Sendable, Hashable {
    public var sha256: String
    public var keyType: String
    public var ipVersion: Int
    public var hops: Int?
    public var session: UInt64

    var pathClass: PathClass { PathClass(ipVersion: ipVersion, hops: hops) }
    struct PathClass: Hashable { var ipVersion: Int; var hops: Int? }

    var pathText: String {
        (ipVersion == 6 ? "IPv6" : "IPv4") + (hops.map { ", \($0) hop\($0 == 1 ? "" : "s") away" } ?? "")
    }
}

/// One server name presented different leaf certificates of one key type on different paths.
public struct CertificateInconsistency: Sendable, Hashable {
    public var server: String
    public var first: CertificateSighting
    public var second: CertificateSighting

    public var message: String {
        "\(server) presented certificate \(first.sha256) over \(first.pathText) (session \(first.session)) and \(second.sha256) over \(second.pathText) (session \(second.session)): a box on one path completes TLS with its own certificate"
    }
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
        /// Distinct paths sessions took, with and without STARTTLS (capped).
        var offeredPaths: [PathSignature] = []
        var missingPaths: [PathSignature] = []
    }
    static let maxPaths = 8
    static let maxCertificates = 8
    /// Distinct certificates per server, with the path each came over.
    var certificates: [GroupKey: [CertificateSighting]] = [:]
    var certificateOrder: [GroupKey] = []
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
        // A reply a gap damaged proves nothing missing (it may have lost the line).
        for e in r.ehlo where e.code / 100 == 2 && (e.complete || e.starttls)
            && !(r.starttls.reply == 220 && r.starttls.frame.map { e.frame > $0 } == true) {
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

        let path = PathEvidence(r)
        if r.tls?.certificate != nil {
            addCertificate(of: r, hops: path.serverHops)
        }

        // Group by the name the server declares; else by its address.
        guard plaintextEHLO else { return }
        var signature: PathSignature?
        if let ttl = path.serverTTL, let hops = path.serverHops {
            signature = PathSignature(ipVersion: r.ipVersion, ttl: ttl, hops: hops, synAck: path.synAck, session: r.id)
        }
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
                if let signature { Self.addPath(signature, to: &g.offeredPaths) }
            } else {
                g.missingCount += 1
                g.missingFamilies.insert(family)
                if g.missingIn.count < listed { g.missingIn.append(id) }
                if let signature { Self.addPath(signature, to: &g.missingPaths) }
            }
        }
        count(&groups.values[index])
    }

    static func addPath(_ p: PathSignature, to list: inout [PathSignature]) {
        if list.count < maxPaths && !list.contains(where: { $0.samePath(p) }) { list.append(p) }
    }

    mutating func addCertificate(of r: borrowing SessionRecord, hops: Int?) {
        guard let cert = r.tls?.certificate, !cert.sha256.isEmpty else { return }
        let sighting = CertificateSighting(sha256: cert.sha256, keyType: cert.keyType, ipVersion: r.ipVersion,
                                           hops: hops, session: r.id)
        addCertificate(sighting, key: GroupKey(name: r.serverName ?? r.tls?.clientHello?.serverName, server: r.server))
    }

    mutating func addCertificate(_ c: CertificateSighting, key: GroupKey) {
        if certificates[key] == nil {
            guard certificates.count < Self.maxGroups else { return }
            certificateOrder.append(key)
            certificates[key] = []
        }
        if certificates[key]!.count < Self.maxCertificates,
           !certificates[key]!.contains(where: { $0.sha256 == c.sha256 && $0.pathClass == c.pathClass }) {
            certificates[key]!.append(c)
        }
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
                for p in g.offeredPaths { Self.addPath(p, to: &mine.offeredPaths) }
                for p in g.missingPaths { Self.addPath(p, to: &mine.missingPaths) }
            }
            add(&groups[key, default: Group()])
        }
        for key in other.certificateOrder {
            for c in other.certificates[key] ?? [] { addCertificate(c, key: key) }
        }
    }

    /// Servers whose sessions without STARTTLS came over another path (hop distance or SYN-ACK
    /// options) than every session with it: a box on that path answers for the server.
    public var pathInconsistencies: [PathInconsistency] {
        groupOrder.compactMap { key in
            let g = groups[key]!
            for m in g.missingPaths {
                // A path that also carried STARTTLS does not explain its absence.
                guard !g.offeredPaths.contains(where: { $0.sameRoute(m) }) else { continue }
                // A box that answers for the server sits before it: fewer hops away, or a
                // SYN-ACK of its own. More hops without STARTTLS is another server, not a box.
                if let o = g.offeredPaths.first(where: { m.hops < $0.hops || !m.sameSynAck($0) }) {
                    return PathInconsistency(server: key.name ?? key.server.description, without: m, with: o)
                }
            }
            return nil
        }
    }

    /// Server names that presented different leaf certificates of one key type on different
    /// paths (address family or hops), each path consistent in itself. A server with an RSA
    /// and an ECDSA certificate shows two key types: not counted.
    public var certificateInconsistencies: [CertificateInconsistency] {
        certificateOrder.compactMap { key in
            let seen = certificates[key] ?? []
            for (i, a) in seen.enumerated() {
                for b in seen[(i + 1)...] where a.keyType == b.keyType && a.sha256 != b.sha256 && a.pathClass != b.pathClass {
                    // Each certificate stays on its own path: rotation shows both on one.
                    let aElsewhere = seen.contains { $0.sha256 == a.sha256 && $0.pathClass == b.pathClass }
                    let bElsewhere = seen.contains { $0.sha256 == b.sha256 && $0.pathClass == a.pathClass }
                    if !aElsewhere && !bElsewhere {
                        return CertificateInconsistency(server: key.name ?? key.server.description, first: a, second: b)
                    }
                }
            }
            return nil
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
            switch code {
            case .starttlsInconsistent: (code, inconsistencies.count)
            case .pathInconsistent: (code, pathInconsistencies.count)
            case .certificateInconsistent: (code, certificateInconsistencies.count)
            default: (code, findingCounts[code.rank])
            }
        }
    }

    public var totalFindings: Int {
        findingCounts.reduce(0, +) + inconsistencies.count + pathInconsistencies.count + certificateInconsistencies.count
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
