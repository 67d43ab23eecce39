import SMTPCapCore

/// One address `probe` talked to, side by side with the others: what the wire showed when it
/// was captured, else what the socket read.
public struct ProbeRow: Sendable {
    public var target: String
    public var mx: String?
    public var preference: Int?
    public var address: String
    public var family: Int
    public var banner: String?
    /// Nil when no EHLO reply was read.
    public var starttlsOffered: Bool?
    /// A masked keyword (`XXXXXXXA`) stood in the EHLO reply.
    public var masked: String?
    public var tlsVersion: String?
    public var tlsCipher: String?
    public var certificateSHA256: String?
    public var serverHops: Int?
    /// The session's verdict, when the capture made one.
    public var verdict: Verdict?
    /// What went wrong with this address, in one line.
    public var error: String?
    /// The row's facts come from captured packets (false: from the socket only).
    public var fromWire: Bool
    /// This host cannot reach the family at all: not a fact about the target.
    public var notTestableHere = false

    public init(target: String, mx: String?, preference: Int?, address: String, family: Int, fromWire: Bool) {
        self.target = target
        self.mx = mx
        self.preference = preference
        self.address = address
        self.family = family
        self.fromWire = fromWire
    }
}

/// The one-line answer of a probe: for each MX host, whether STARTTLS came through on each
/// address family.
public enum ProbeVerdict {
    public static func line(_ rows: [ProbeRow], problems: Int) -> String {
        var hosts: [String] = []
        for r in rows where !hosts.contains(r.mx ?? r.address) { hosts.append(r.mx ?? r.address) }
        func names(_ f: Set<Int>) -> String { f.sorted().map { "IPv\($0)" }.joined(separator: " and ") }
        var parts: [String] = []
        for host in hosts {
            let all = rows.filter { ($0.mx ?? $0.address) == host }
            let mine = all.filter { !$0.notTestableHere }
            if mine.isEmpty { continue }
            let answered = mine.filter { $0.starttlsOffered != nil }
            let with = Set(answered.filter { $0.starttlsOffered == true }.map(\.family))
            let without = Set(answered.filter { $0.starttlsOffered == false }.map(\.family))
            let unreached = Set(mine.filter { $0.starttlsOffered == nil }.map(\.family)).subtracting(with).subtracting(without)
            var part: String
            if answered.isEmpty {
                let why = mine.compactMap(\.error).first ?? "no answer"
                part = "\(host): not reached (\(why))"
            } else if !without.isEmpty && !with.isEmpty && without.isDisjoint(with: with) {
                let masked = mine.compactMap(\.masked).first.map { " (masked as \($0))" } ?? ""
                part = "STARTTLS removed on the \(names(without)) path to \(host)\(masked); intact over \(names(with))"
            } else if !without.isEmpty && with.isEmpty {
                let masked = mine.compactMap(\.masked).first
                part = masked.map { "STARTTLS masked as \($0) on every path to \(host): a box in front of it (or near this host) strips it" }
                    ?? "\(host) offers no STARTTLS over \(names(without))"
            } else if !without.isEmpty {
                part = "STARTTLS missing on some \(names(without)) connections to \(host), offered on others"
            } else {
                let failed = mine.filter { $0.starttlsOffered == true && $0.tlsVersion == nil }
                if failed.isEmpty {
                    let versions = Set(mine.compactMap(\.tlsVersion)).sorted().joined(separator: "/")
                    let every = unreached.isEmpty ? "every path" : "every path reached"
                    part = "STARTTLS offered and TLS agreed on \(every) to \(host) (\(names(with))\(versions.isEmpty ? "" : ", \(versions)"))"
                } else {
                    part = "STARTTLS offered by \(host) but TLS failed over \(names(Set(failed.map(\.family))))"
                }
            }
            if !answered.isEmpty && !unreached.isEmpty { part += "; \(names(unreached)) not reached" }
            parts.append(part)
        }
        let untested = Set(rows.filter(\.notTestableHere).map(\.family))
        if !untested.isEmpty { parts.append("\(names(untested)) not tested: this host has no route or address of that family") }
        if problems > 0 { parts.append("\(problems) target(s) or host(s) could not be resolved") }
        return parts.isEmpty ? "nothing was probed" : parts.joined(separator: "; ")
    }
}
