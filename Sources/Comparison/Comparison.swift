import Findings
import SMTPCapCore
import SMTPMachine

/// One session as `compare` sees it: its record (with a transcript) and what pairing reads.
public struct ComparedSession: Sendable {
    public var record: SessionRecord
    /// Command verbs in order (`EHLO MAIL RCPT DATA QUIT`).
    var verbs: [String]
    var messageSizes: [UInt64]
    var path: PathEvidence
    /// A hash of what the client sent (EHLO name, command lines, message sizes): the same on
    /// both sides of a path that does not rewrite commands.
    var clientSide: Int
    /// The 4-tuple as text, for anchoring when nothing translated it.
    var tuple: String
    /// A hash of `verbs`: equal verb lists skip the LCS.
    var verbsHash: Int

    public init(_ record: SessionRecord) {
        self.record = record
        verbs = (record.transcript ?? []).compactMap { line in
            guard line.direction == .clientToServer, !line.text.hasPrefix("<") else { return nil }
            return String(line.text.prefix(while: { $0 != " " && $0 != ":" }).prefix(16)).uppercased()
        }.prefix(Comparison.maxVerbs).map { $0 }
        messageSizes = record.messages.map(\.bytes)
        path = PathEvidence(record)
        var h = Hasher()
        h.combine(record.heloName)
        h.combine(record.server.port)
        for line in (record.transcript ?? []).prefix(Comparison.maxLines) where line.direction == .clientToServer {
            h.combine(line.text)
        }
        h.combine(messageSizes)
        clientSide = h.finalize()
        tuple = record.client.description + " " + record.server.description
        verbsHash = verbs.hashValue
    }
}

/// One difference between the two sides of a pair.
public struct Difference: Sendable, Hashable {
    /// What differs: `banner`, `EHLO reply line 6`, `reply to MAIL`, `command 3`, `client
    /// address`, `tls`, `certificate`, `path`, `syn-ack`, `verdict`.
    public var what: String
    /// `server-to-client`, `client-to-server`, or nil for facts of the session.
    public var direction: String?
    /// The text on each side (nil: absent there).
    public var a: String?
    public var b: String?
    /// One line for people: `server sent 250-STARTTLS, client received 250-XXXXXXXA`.
    public var message: String
}

public struct SessionPair: Sendable {
    public var a: ComparedSession
    public var b: ComparedSession
    /// Which capture was nearer the server for this pair.
    public var serverSide: Nearer
    public var differences: [Difference]
}

/// Which capture is nearer the server: decides the wording (`server sent`, `client
/// received`).
public enum Nearer: Sendable, Equatable {
    case a, b
}

public struct ComparisonResult: Sendable {
    public var pairs: [SessionPair]
    public var unpairedA: [ComparedSession]
    public var unpairedB: [ComparedSession]
    /// Seconds to add to A's clock to match B's (estimated from the pairs).
    public var clockOffset: Double
    /// Which capture sat nearer the server.
    public var nearer: Nearer
    /// Whether `nearer` came from hop counts (else from the order: A is the sender's side).
    public var nearerFromHops: Bool
    public var identical: Bool { unpairedA.isEmpty && unpairedB.isEmpty && pairs.allSatisfy { $0.differences.isEmpty } }
}

/// Pairs the sessions of two captures of the same traffic taken at two points (sender and
/// receiving MX, or both sides of a firewall) and lists what differs. Pairing does not rely on
/// the 4-tuple (NAT and proxies change it): it reads start time (after estimating the clocks'
/// offset), server name and port, EHLO name, the command sequence and message sizes.
public enum Comparison {
    /// Pairs further apart than this (after the offset) are not paired.
    static let window = 120.0
    /// B sessions scored per A session, nearest in time first.
    static let maxCandidates = 64
    /// Commands compared per session when pairing.
    static let maxVerbs = 64

    public static func compare(_ a: [SessionRecord], _ b: [SessionRecord]) -> ComparisonResult {
        let sa = a.map(ComparedSession.init), sb = b.map(ComparedSession.init)
        let offset = estimateOffset(sa, sb)
        // Candidates: every pair close enough in time; B sorted by start for a window search.
        let orderB = sb.indices.sorted { seconds(sb[$0].record.start) < seconds(sb[$1].record.start) }
        let startsB = orderB.map { seconds(sb[$0].record.start) }
        var candidates: [(score: Double, i: Int, j: Int)] = []
        for (i, x) in sa.enumerated() {
            // The B sessions nearest in time, outward from A's start, at most `maxCandidates`
            // of them: a capture of many sessions in one minute stays linear.
            let t = seconds(x.record.start) + offset
            let middle = lowerBound(startsB, t)
            var before = middle - 1, after = middle, taken = 0
            while taken < maxCandidates {
                let useAfter: Bool
                switch (before >= 0 && startsB[before] >= t - window, after < startsB.count && startsB[after] <= t + window) {
                case (false, false): useAfter = false
                case (true, false): useAfter = false
                case (false, true): useAfter = true
                case (true, true): useAfter = startsB[after] - t <= t - startsB[before]
                }
                let k: Int
                if useAfter {
                    k = after
                    after += 1
                } else if before >= 0 && startsB[before] >= t - window {
                    k = before
                    before -= 1
                } else {
                    break
                }
                taken += 1
                let j = orderB[k]
                let s = score(x, sb[j], offset: offset)
                if s >= 6 { candidates.append((s, i, j)) }
            }
        }
        // Best first; ties by A's order then B's, so the result does not depend on hashing.
        candidates.sort { ($0.score, -$0.i, -$0.j) > ($1.score, -$1.i, -$1.j) }
        var usedA = Set<Int>(), usedB = Set<Int>()
        var pairs: [(Int, Int)] = []
        for c in candidates where !usedA.contains(c.i) && !usedB.contains(c.j) {
            usedA.insert(c.i)
            usedB.insert(c.j)
            pairs.append((c.i, c.j))
        }
        pairs.sort { $0.0 < $1.0 }
        let (nearer, fromHops) = nearerToServer(pairs.map { (sa[$0.0], sb[$0.1]) })
        return ComparisonResult(
            pairs: pairs.map { p in
                // Each pair by its own hops (mail may flow both ways through one firewall); the
                // captures' overall vote, then the order, when it has none.
                let (own, ownFromHops) = nearerToServer([(sa[p.0], sb[p.1])])
                let side = ownFromHops ? own : nearer
                return SessionPair(a: sa[p.0], b: sb[p.1], serverSide: side,
                                   differences: differences(sa[p.0], sb[p.1], nearer: side))
            },
            unpairedA: sa.indices.filter { !usedA.contains($0) }.map { sa[$0] },
            unpairedB: sb.indices.filter { !usedB.contains($0) }.map { sb[$0] },
            clockOffset: offset, nearer: nearer, nearerFromHops: fromHops)
    }

    /// `b - a` in seconds.
    public static func secondsBetween(_ a: Timestamp, _ b: Timestamp) -> Double { seconds(b) - seconds(a) }

    static func seconds(_ t: Timestamp) -> Double { Double(t.seconds) + Double(t.nanoseconds) / 1e9 }

    static func lowerBound(_ xs: [Double], _ v: Double) -> Int {
        var lo = 0, hi = xs.count
        while lo < hi {
            let mid = (lo + hi) / 2
            if xs[mid] < v { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    /// The clocks' offset. First from anchors: the same 4-tuple in both captures (nothing
    /// translated it), or a client side (EHLO name, every command line, message sizes) that
    /// occurs once in each capture; the median of their start differences. Without anchors,
    /// each A session votes with the most similar B session nearest in time, in 10 ms bins;
    /// the fullest bin wins, the one nearest 0 on a tie; 0 when nothing is similar.
    static func estimateOffset(_ a: [ComparedSession], _ b: [ComparedSession]) -> Double {
        var anchors: [Double] = []
        var byTuple: [String: Int] = [:]
        for (j, y) in b.enumerated() { byTuple[y.tuple, default: j] = j }
        for x in a {
            if let j = byTuple[x.tuple], x.clientSide == b[j].clientSide {
                anchors.append(seconds(b[j].record.start) - seconds(x.record.start))
            }
        }
        if anchors.isEmpty {
            func counts(_ list: [ComparedSession]) -> [Int: (count: Int, index: Int)] {
                var out: [Int: (count: Int, index: Int)] = [:]
                for (i, x) in list.enumerated() { out[x.clientSide, default: (0, i)].count += 1 }
                return out
            }
            let ca = counts(a), cb = counts(b)
            for (key, x) in ca where x.count == 1 {
                guard let y = cb[key], y.count == 1 else { continue }
                anchors.append(seconds(b[y.index].record.start) - seconds(a[x.index].record.start))
            }
        }
        if !anchors.isEmpty {
            anchors.sort()
            return anchors[anchors.count / 2]
        }
        // Votes: A sessions spread over the whole capture, at most 2,000 of them, each against
        // the B sessions of the same client side (or all, few enough).
        var groups: [Int: [Int]] = [:]
        for (j, y) in b.enumerated() { groups[y.clientSide, default: []].append(j) }
        var votes: [Int64: Int] = [:]
        let step = max(1, a.count / 2_000)
        var budget = 400_000
        for i in stride(from: 0, to: a.count, by: step) {
            let x = a[i]
            let pool = groups[x.clientSide] ?? []
            var best: (score: Double, distance: Double, d: Double)?
            for j in pool.prefix(512) {
                guard budget > 0 else { break }
                budget -= 1
                let d = seconds(b[j].record.start) - seconds(x.record.start)
                let s = similarity(x, b[j])
                if best == nil || s > best!.score || (s == best!.score && abs(d) < best!.distance) {
                    best = (s, abs(d), d)
                }
            }
            if let best { votes[Int64((best.d * 100).rounded()), default: 0] += 1 }
        }
        guard let winner = votes.max(by: { ($0.value, -abs($0.key), $0.key) < ($1.value, -abs($1.key), $1.key) }) else { return 0 }
        return Double(winner.key) / 100
    }

    /// What two sessions share apart from time.
    static func similarity(_ x: ComparedSession, _ y: ComparedSession) -> Double {
        var s = 0.0
        if let n = x.record.serverName, n == y.record.serverName { s += 3 }
        if let h = x.record.heloName, h == y.record.heloName { s += 2 }
        if x.record.server.port == y.record.server.port { s += 1 }
        if x.verbsHash == y.verbsHash && x.verbs == y.verbs {
            if !x.verbs.isEmpty { s += 3 }
        } else if !x.verbs.isEmpty || !y.verbs.isEmpty {
            s += 3 * Double(lcs(x.verbs, y.verbs)) / Double(max(x.verbs.count, y.verbs.count))
        }
        if x.clientSide == y.clientSide { s += 1 }
        if !x.messageSizes.isEmpty && x.messageSizes == y.messageSizes { s += 3 }
        if x.record.ipVersion == y.record.ipVersion { s += 0.5 }
        return s
    }

    static func score(_ x: ComparedSession, _ y: ComparedSession, offset: Double) -> Double {
        let dt = abs(seconds(y.record.start) - seconds(x.record.start) - offset)
        return similarity(x, y) + 3 * max(0, 1 - dt / 30)
    }

    static func lcs<T: Equatable>(_ a: [T], _ b: [T]) -> Int {
        guard !a.isEmpty, !b.isEmpty else { return 0 }
        var previous = [Int](repeating: 0, count: b.count + 1)
        var current = previous
        for x in a {
            for (j, y) in b.enumerated() {
                current[j + 1] = x == y ? previous[j] + 1 : max(previous[j + 1], current[j])
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }

    /// Which capture sat nearer the server, by the pairs' hop counts: fewer hops to the server
    /// (or more to the client) is nearer. A tie keeps the documented order: A is the sender's.
    static func nearerToServer(_ pairs: [(ComparedSession, ComparedSession)]) -> (Nearer, Bool) {
        var vote = 0
        for (x, y) in pairs {
            if let sx = x.path.serverHops, let sy = y.path.serverHops, sx != sy { vote += sx < sy ? -1 : 1 }
            if let cx = x.path.clientHops, let cy = y.path.clientHops, cx != cy { vote += cx > cy ? -1 : 1 }
        }
        return (vote < 0 ? .a : .b, vote != 0)
    }
}
