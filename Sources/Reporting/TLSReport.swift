import SMTPCapCore
import SMTPMachine

/// The report header's fields (`--organization`, `--contact`) and where it goes.
public struct TLSReportSettings: Sendable {
    public var path: String
    public var organization: String
    public var contact: String
    public init(path: String, organization: String, contact: String) {
        self.path = path
        self.organization = organization
        self.contact = contact
    }
}

/// An RFC 8460 SMTP TLS report over the sessions of a capture: one policy per recipient
/// domain, each with its successful and failed session counts and failure details.
///
/// - A session counts as successful when its verdict is `encrypted`, as failed when it is
///   `plaintext` or `stripped` (not encrypted). Inconclusive sessions are in neither count
///   (the format has no place for them); a warning says how many there were. Sessions to the
///   submission ports (587, 465) are left out: the report is about delivery to MX hosts.
/// - Its policy domains are the domains of its RCPT TO addresses (a session is counted once
///   in each). A session without them (an encrypted one hides its RCPT) counts under the
///   domains that plaintext sessions to the same server (its declared name or address) sent
///   to; failing that, under the probed target, else the server's declared name, else its
///   address. Domains that are not host names (wire text can be anything) are not used.
/// - The policy type is `no-policy-found`: a capture does not show MTA-STS or DANE policies.
/// - A failure's `result-type` is `starttls-not-supported` when STARTTLS was missing, masked,
///   stripped or refused, else `validation-failure`; `failure-reason-code` is smtpcap's reason
///   (`starttls-masked`, `starttls-stripped`, `starttls-missing`, a finding code).
/// Bounded: 10,000 policy domains and 1,000 failure-detail rows per domain; past those,
/// sessions are counted in `notReported`.
public struct TLSReport: Sendable {
    static let maxDomains = 10_000
    static let maxDetails = 1_000

    struct DetailKey: Hashable, Sendable {
        var resultType: String
        var sendingIP: String
        var receivingIP: String
        var mxHostname: String?
        var helo: String?
        var reason: String
    }

    struct Policy: Sendable {
        var successes = 0
        var failures = 0
        var details: [DetailKey: Int] = [:]
        var order: [DetailKey] = []

        mutating func add(success: Bool, detail: DetailKey?, count: Int = 1) {
            if success {
                successes += count
                return
            }
            failures += count
            guard let detail else { return }
            if let n = details[detail] {
                details[detail] = n + count
            } else if order.count < TLSReport.maxDetails {
                details[detail] = count
                order.append(detail)
            }
        }

        mutating func merge(_ o: Policy) {
            successes += o.successes
            failures += o.failures - o.order.reduce(0) { $0 + (o.details[$1] ?? 0) }
            for k in o.order { add(success: false, detail: k, count: o.details[k] ?? 0) }
        }
    }

    var policies: [String: Policy] = [:]
    var domainOrder: [String] = []
    /// Sessions without recipients, by server (declared name, else address), placed at the
    /// end under the domains learned for that server.
    var pending: [String: Policy] = [:]
    var pendingOrder: [String] = []
    /// The recipient domains seen per server (its name or address), at most `maxLearned`
    /// each, in the order seen.
    var learned: [String: [String]] = [:]
    var learnedSets: [String: Set<String>] = [:]
    static let maxLearned = 64
    var first: Timestamp?
    var last: Timestamp?
    public private(set) var inconclusive = 0
    /// Sessions to submission ports, left out.
    public private(set) var submission = 0
    public private(set) var notReported = 0
    public private(set) var failedSessions = 0
    public private(set) var successfulSessions = 0

    public init() {}

    /// Submission ports: a client handing mail to its own server, not a delivery to a
    /// recipient domain's MX, which is what the report is about.
    static let submissionPorts: Set<UInt16> = [587, 465]

    public mutating func add(_ r: SessionRecord) {
        if Self.submissionPorts.contains(r.server.port) {
            submission += 1
            return
        }
        if first == nil || r.start < first! { first = r.start }
        if last == nil || last! < r.end { last = r.end }
        let success: Bool
        switch r.verdict {
        case .encrypted: success = true
        case .plaintext, .stripped: success = false
        case .inconclusive:
            inconclusive += 1
            return
        }
        if success { successfulSessions += 1 } else { failedSessions += 1 }
        let detail = success ? nil : Self.detail(r)
        let servers = [r.serverName?.lowercased()].compactMap { $0 }.filter(Self.isHostName) + [r.server.address.description]
        if Self.domains(r).isEmpty {
            let key = servers[0]
            if pending[key] == nil {
                guard pending.count < Self.maxDomains else { notReported += 1; return }
                pending[key] = Policy()
                pendingOrder.append(key)
            }
            pending[key]!.add(success: success, detail: detail)
            return
        }
        for server in servers where learned.count < Self.maxDomains || learned[server] != nil {
            for domain in Self.domains(r) where (learned[server]?.count ?? 0) < Self.maxLearned {
                if learnedSets[server, default: []].insert(domain).inserted { learned[server, default: []].append(domain) }
            }
        }
        for domain in Self.domains(r) {
            if policies[domain] == nil {
                guard policies.count < Self.maxDomains else { notReported += 1; continue }
                policies[domain] = Policy()
                domainOrder.append(domain)
            }
            policies[domain]!.add(success: success, detail: detail)
        }
    }

    /// The policies with the sessions without recipients placed.
    func placed() -> (policies: [String: Policy], order: [String]) {
        var all = policies, order = domainOrder
        for key in pendingOrder {
            let domains = learned[key] ?? [key]
            for domain in domains {
                if all[domain] == nil {
                    all[domain] = Policy()
                    order.append(domain)
                }
                all[domain]!.merge(pending[key]!)
            }
        }
        return (all, order)
    }

    /// The session's policy domains: its recipients' domains that are host names (letters,
    /// digits, hyphens and dots: an internationalized name is counted in its A-label form only
    /// when the client sent it so), else the probed target.
    static func domains(_ r: SessionRecord) -> [String] {
        let valid = r.recipientDomains.filter(isHostName)
        if !valid.isEmpty { return valid }
        if let target = r.probe?.target, isHostName(target.lowercased()) { return [target.lowercased()] }
        return []
    }

    static func isHostName(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= 253 && s.first != "." && s.first != "-"
            && s.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7a) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2d || $0 == 0x2e }
    }

    static func detail(_ r: SessionRecord) -> DetailKey {
        let codes = Set(r.findings.map(\.code))
        let masked = r.ehlo.contains { !$0.maskedKeywords.isEmpty && !$0.starttls }
        let reason: String
        let notSupported: Bool
        if masked {
            (reason, notSupported) = ("starttls-masked", true)
        } else if codes.contains(.starttlsStripped) {
            (reason, notSupported) = ("starttls-stripped", true)
        } else if let code = [FindingCode.starttlsMissing, .starttlsRefused].first(where: codes.contains) {
            (reason, notSupported) = (code.rawValue, true)
        } else if let code = [FindingCode.tlsFailed, .tlsNotStarted, .starttlsUnused, .starttlsCommandInjection,
                              .starttlsResponseInjection, .plaintextData].first(where: codes.contains) {
            (reason, notSupported) = (code.rawValue, false)
        } else {
            (reason, notSupported) = ("plaintext", false)
        }
        let helo = r.ehlo.first(where: { $0.firstLine != nil })?.firstLine.map { String(firstWord($0)) }
        return DetailKey(resultType: notSupported ? "starttls-not-supported" : "validation-failure",
                         sendingIP: r.client.address.description, receivingIP: r.server.address.description,
                         mxHostname: r.probe?.mx ?? r.serverName, helo: helo ?? r.serverName, reason: reason)
    }

    /// The report as one JSON document.
    public func json(_ settings: TLSReportSettings) -> String {
        var o = JSONObject()
        o.string("organization-name", settings.organization)
        let start = first ?? .zero, end = last ?? start
        o.object("date-range") { d in
            d.string("start-datetime", Self.rfc3339(start))
            d.string("end-datetime", Self.rfc3339(end))
        }
        o.string("contact-info", settings.contact)
        o.string("report-id", "\(Self.rfc3339(start))_\(Self.rfc3339(end))_\(reportDigest)@smtpcap")
        let (policies, domainOrder) = placed()
        o.rawText("policies", JSONObject.array(domainOrder.map { domain in
            let p = policies[domain]!
            var x = JSONObject()
            x.object("policy") { y in
                y.string("policy-type", "no-policy-found")
                y.string("policy-domain", domain)
            }
            x.object("summary") { y in
                y.int("total-successful-session-count", p.successes)
                y.int("total-failure-session-count", p.failures)
            }
            x.rawText("failure-details", JSONObject.array(p.order.map { k in
                var y = JSONObject()
                y.string("result-type", k.resultType)
                y.string("sending-mta-ip", k.sendingIP)
                y.string("receiving-ip", k.receivingIP)
                if let mx = k.mxHostname { y.string("receiving-mx-hostname", mx) }
                if let helo = k.helo { y.string("receiving-mx-helo", helo) }
                y.int("failed-session-count", p.details[k] ?? 0)
                y.string("failure-reason-code", k.reason)
                return y.closed
            }))
            return x.closed
        }))
        return o.closed + "\n"
    }

    /// Tells reports over different captures of the same time apart: a mix of the counts.
    var reportDigest: String {
        var h: UInt64 = 0
        for d in domainOrder.sorted() {
            for b in d.utf8 { h = FlowIdentity.mix(h ^ UInt64(b)) }
            h = FlowIdentity.mix(h ^ UInt64(policies[d]!.successes) << 32 ^ UInt64(policies[d]!.failures))
        }
        h = FlowIdentity.mix(h ^ UInt64(successfulSessions) << 32 ^ UInt64(failedSessions))
        return String(h, radix: 16)
    }

    /// RFC 3339 in UTC to the second, as RFC 8460's examples write it.
    static func rfc3339(_ t: Timestamp) -> String {
        let full = t.iso8601  // 2026-12-03T16:03:13.123456Z
        guard let dot = full.firstIndex(of: ".") else { return full }
        return String(full[..<dot]) + "Z"
    }
}
