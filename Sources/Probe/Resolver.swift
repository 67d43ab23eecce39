import CProbeSupport

/// One address `probe` talks to, and how it was found.
public struct ProbeAddress: Sendable, Hashable {
    /// The target as given (`example.org`, `mx.example.org`, `203.0.113.25`).
    public var target: String
    /// The MX host the address belongs to (nil for a literal address; the host itself for a
    /// host name or a domain without MX).
    public var mx: String?
    /// The MX preference (nil when no MX record named the host).
    public var preference: Int?
    public var address: String
    public var family: Int
}

/// A target or an MX host that gave no address, in one line.
public struct ProbeProblem: Sendable, Hashable {
    public var target: String
    public var host: String?
    public var message: String
}

/// Turns targets into addresses as a sending MTA would (RFC 5321 §5): a domain's MX hosts in
/// preference order, then each one's A and AAAA; without MX, the domain's own A and AAAA; a
/// literal address is itself. Uses the system resolver (`/etc/resolv.conf`).
public enum ProbeResolver {
    static let typeA = 1, typeMX = 15, typeAAAA = 28

    public static func resolve(_ targets: [String], families: [Int]) -> (addresses: [ProbeAddress], problems: [ProbeProblem]) {
        var out: [ProbeAddress] = [], problems: [ProbeProblem] = []
        for target in targets {
            if let family = literalFamily(target) {
                let bare = target.hasPrefix("[") && target.hasSuffix("]") ? String(target.dropFirst().dropLast()) : target
                if families.contains(family) {
                    out.append(ProbeAddress(target: target, mx: nil, preference: nil, address: bare, family: family))
                } else {
                    problems.append(ProbeProblem(target: target, host: nil, message: "an IPv\(family) address, excluded by -\(families[0])"))
                }
                continue
            }
            let name = target.hasSuffix(".") ? String(target.dropLast()) : target
            switch mxRecords(name) {
            case .failure(let message):
                problems.append(ProbeProblem(target: target, host: nil, message: message))
            case .success(let records) where records.isEmpty:
                // No MX: the domain's own addresses (an implicit MX of preference 0).
                let found = addresses(of: name, families: families, target: target, preference: nil, problems: &problems)
                if found.isEmpty && !problems.contains(where: { $0.target == target }) {
                    problems.append(ProbeProblem(target: target, host: name, message: "no MX record and no address: no mail can be delivered to it"))
                }
                out += found
            case .success(let records):
                if records.count == 1 && records[0].host.isEmpty {
                    problems.append(ProbeProblem(target: target, host: nil, message: "a null MX (RFC 7505): the domain accepts no mail"))
                    continue
                }
                for r in records {
                    let found = addresses(of: r.host, families: families, target: target, preference: r.preference, problems: &problems)
                    if found.isEmpty && !problems.contains(where: { $0.host == r.host }) {
                        problems.append(ProbeProblem(target: target, host: r.host, message: "MX \(r.host) has no \(familyWords(families)) address"))
                    }
                    out += found
                }
            }
        }
        return (out, problems)
    }

    static func familyWords(_ families: [Int]) -> String {
        families.map { $0 == 6 ? "AAAA" : "A" }.joined(separator: " or ")
    }

    static func literalFamily(_ s: String) -> Int? {
        let bare = s.hasPrefix("[") && s.hasSuffix("]") ? String(s.dropFirst().dropLast()) : s
        if bare.contains(":") && bare.allSatisfy({ $0.isHexDigit || $0 == ":" || $0 == "." }) { return 6 }
        let parts = bare.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count == 4 && parts.allSatisfy({ UInt8($0) != nil }) { return 4 }
        return nil
    }

    static func addresses(of host: String, families: [Int], target: String, preference: Int?,
                          problems: inout [ProbeProblem]) -> [ProbeAddress] {
        var out: [ProbeAddress] = []
        for family in families {
            var text = [CChar](repeating: 0, count: 4096)
            var err = [CChar](repeating: 0, count: 256)
            let n = smtpcap_addresses(host, Int32(family), &text, Int32(text.count), &err, Int32(err.count))
            if n < 0 {
                problems.append(ProbeProblem(target: target, host: host, message: cString(err)))
                continue
            }
            for line in cString(text).split(separator: "\n") where !out.contains(where: { $0.address == String(line) }) {
                out.append(ProbeAddress(target: target, mx: host, preference: preference, address: String(line), family: family))
            }
        }
        return out
    }

    enum Lookup {
        case success([(preference: Int, host: String)])
        case failure(String)
    }

    /// The MX records of `name`, by preference (then name); empty when the name exists with no
    /// MX.
    static func mxRecords(_ name: String) -> Lookup {
        var answer = [UInt8](repeating: 0, count: 65_535)
        var hErr: Int32 = 0
        let n = smtpcap_res_query(name, Int32(typeMX), &answer, Int32(answer.count), &hErr)
        if n < 0 {
            switch hErr {
            case 1: return .failure("no such domain (NXDOMAIN)")
            case 4: return .success([])
            case 2: return .failure("DNS lookup failed: the resolver did not answer (timeout or SERVFAIL)")
            default: return .failure("DNS lookup failed (h_errno \(hErr))")
            }
        }
        guard let records = DNSMessage.mxRecords(Array(answer.prefix(Int(n)))) else {
            return .failure("DNS lookup failed: malformed answer")
        }
        return .success(records.sorted { ($0.preference, $0.host) < ($1.preference, $1.host) })
    }

    /// This host's fully qualified name (the default EHLO name), as the resolver gives it.
    public static func localName() -> String {
        var name = [CChar](repeating: 0, count: 256)
        guard smtpcap_fqdn(&name, Int32(name.count)) == 0 else { return "localhost" }
        let text = cString(name)
        return text.isEmpty ? "localhost" : text
    }

    static func cString(_ chars: [CChar]) -> String {
        String(decoding: chars.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Reads MX records out of a DNS response (RFC 1035 §4.1), name compression included; every
/// length checked, at most 64 pointer jumps per name.
public enum DNSMessage {
    public static func mxRecords(_ m: [UInt8]) -> [(preference: Int, host: String)]? {
        guard m.count >= 12 else { return nil }
        let questions = Int(m[4]) << 8 | Int(m[5])
        let answers = Int(m[6]) << 8 | Int(m[7])
        var at = 12
        for _ in 0..<questions {
            guard let (_, next) = name(m, at) else { return nil }
            at = next + 4
        }
        var out: [(Int, String)] = []
        for _ in 0..<answers {
            guard let (_, next) = name(m, at), next + 10 <= m.count else { return nil }
            let type = Int(m[next]) << 8 | Int(m[next + 1])
            let length = Int(m[next + 8]) << 8 | Int(m[next + 9])
            let data = next + 10
            guard data + length <= m.count else { return nil }
            if type == 15 && length >= 3 {
                let preference = Int(m[data]) << 8 | Int(m[data + 1])
                guard let (host, _) = name(m, data + 2) else { return nil }
                out.append((preference, host))
            }
            at = data + length
        }
        return out
    }

    /// The name at `start` and the offset after it (after the first pointer, if any).
    static func name(_ m: [UInt8], _ start: Int) -> (String, Int)? {
        var labels: [String] = []
        var at = start, end: Int?
        var jumps = 0
        while true {
            guard at < m.count else { return nil }
            let length = Int(m[at])
            if length == 0 {
                return (labels.joined(separator: "."), end ?? at + 1)
            }
            if length & 0xc0 == 0xc0 {
                guard at + 1 < m.count, jumps < 64 else { return nil }
                if end == nil { end = at + 2 }
                at = (length & 0x3f) << 8 | Int(m[at + 1])
                jumps += 1
                continue
            }
            guard length < 64, at + 1 + length <= m.count else { return nil }
            labels.append(String(decoding: m[(at + 1)..<(at + 1 + length)], as: UTF8.self))
            guard labels.count <= 128 else { return nil }
            at += 1 + length
        }
    }
}
