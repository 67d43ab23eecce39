import Foundation

/// A large mail provider whose inbound servers always offer STARTTLS, and how its servers are
/// recognised from what a capture shows. The entries live in `providers.json` (data, with the
/// public sources each rests on), built into the binary.
public struct MailProvider: Sendable, Hashable {
    public var name: String
    var hosts: [Glob]
    var greeting: [Glob]
    var ehlo: [Glob]

    /// Whether a server that declared `host`, greeted with `greeting` (the text after `220 `;
    /// nil when unseen or masked) and opened its EHLO reply with `ehloLine` is this provider's:
    /// the host must match, and every one of the greeting and the EHLO line that was seen must
    /// match its patterns (at least one seen). An old banner of the same host (from before the
    /// provider offered STARTTLS everywhere) then does not pass for today's.
    func recognises(host: String, greeting text: String?, ehloLine: String?) -> Bool {
        guard text != nil || ehloLine != nil, hosts.contains(where: { $0.matches(host) }) else { return false }
        if let text, !greeting.contains(where: { $0.matches(text) }) { return false }
        if let ehloLine, !ehlo.contains(where: { $0.matches(ehloLine) }) { return false }
        return true
    }
}

/// A case-insensitive whole-string pattern where `*` matches any run of characters.
struct Glob: Sendable, Hashable {
    let pattern: [UInt8]
    /// The literal text after the last `*` (all of it without one): a text that does not end
    /// with it cannot match, which rejects most names at once.
    let tail: [UInt8]

    init(_ text: String) {
        pattern = Array(text.utf8).map(Self.lower)
        tail = Array(pattern.split(separator: 0x2a, omittingEmptySubsequences: false).last ?? [])
    }

    @inline(__always)
    static func lower(_ b: UInt8) -> UInt8 { b >= 0x41 && b <= 0x5a ? b | 0x20 : b }

    /// The classic two-pointer match with one backtrack point: linear in practice, at most
    /// pattern × text steps. Reads the text in place (no copy).
    func matches(_ text: String) -> Bool {
        var text = text
        return text.withUTF8 { t in
            let n = min(t.count, 512)
            guard n >= tail.count else { return false }
            for i in 0..<tail.count where Self.lower(t[n - tail.count + i]) != tail[i] { return false }
            var p = 0, i = 0
            var star = -1, mark = 0
            while i < n {
                let c = Self.lower(t[i])
                if p < pattern.count && pattern[p] != 0x2a && pattern[p] == c {
                    p += 1
                    i += 1
                } else if p < pattern.count && pattern[p] == 0x2a {
                    star = p
                    mark = i
                    p += 1
                } else if star >= 0 {
                    p = star + 1
                    mark += 1
                    i = mark
                } else {
                    return false
                }
            }
            while p < pattern.count && pattern[p] == 0x2a { p += 1 }
            return p == pattern.count
        }
    }
}

/// The provider knowledge: `providers.json`, read once.
public enum ProviderKnowledge {
    struct File: Decodable {
        struct Entry: Decodable {
            var name: String
            var hosts: [String]
            var greeting: [String]
            var ehlo: [String]
            var sources: [Source]
        }
        struct Source: Decodable {
            var url: String
            var says: String
        }
        var version: Int
        var providers: [Entry]
    }

    /// The providers built in. A file that does not parse is a build defect (a test reads it),
    /// never a crash: the knowledge is then empty.
    public static let providers: [MailProvider] = parse(PackageResources.providers_json) ?? []

    static func parse(_ bytes: [UInt8]) -> [MailProvider]? {
        guard let file = try? JSONDecoder().decode(File.self, from: Data(bytes)), file.version == 1 else { return nil }
        return file.providers.map {
            MailProvider(name: $0.name, hosts: $0.hosts.map(Glob.init), greeting: $0.greeting.map(Glob.init),
                         ehlo: $0.ehlo.map(Glob.init))
        }
    }

    /// Number of sources cited per provider name (for tests: every entry cites one).
    public static var sourcesPerProvider: [String: Int] {
        guard let file = try? JSONDecoder().decode(File.self, from: Data(PackageResources.providers_json)) else { return [:] }
        var out: [String: Int] = [:]
        for e in file.providers { out[e.name] = e.sources.filter { $0.url.hasPrefix("https://") && !$0.says.isEmpty }.count }
        return out
    }

    /// The literal ends of every host pattern: a name that ends with none of them is no
    /// provider's, which most names show at once (a few byte compares, no string passed on).
    static let hostTails: [[UInt8]] = providers.flatMap { $0.hosts.map(\.tail) }

    /// Whether `host` could match some provider's host pattern.
    public static func mayBeProvider(_ host: String) -> Bool {
        var host = host
        return host.withUTF8 { h in
            hostTails.contains { tail in
                guard h.count >= tail.count else { return false }
                let start = h.count - tail.count
                for i in 0..<tail.count where Glob.lower(h[start + i]) != tail[i] { return false }
                return true
            }
        }
    }

    /// The provider a server is, from the name it declared, its greeting text and its EHLO
    /// reply's first line.
    public static func provider(host: String?, greeting: String?, ehloLine: String?) -> MailProvider? {
        guard let host, !host.isEmpty, mayBeProvider(host) else { return nil }
        return providers.first { $0.recognises(host: host, greeting: greeting, ehloLine: ehloLine) }
    }
}

/// The provider file's pattern matching, for tests.
public enum MailProviderGlobProbe {
    public static func matches(_ pattern: String, _ text: String) -> Bool { Glob(pattern).matches(text) }
}
