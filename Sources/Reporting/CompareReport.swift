import Comparison
import SMTPCapCore
import SMTPMachine

/// `smtpcap compare`'s output: each pair and its differences, the unpaired sessions, a
/// summary; as text or JSON lines.
public struct CompareReport {
    public var color: Bool
    public var fileA: String
    public var fileB: String

    public init(color: Bool, fileA: String, fileB: String) {
        self.color = color
        self.fileA = fileA
        self.fileB = fileB
    }

    func bold(_ s: String) -> String { color ? "\u{1b}[1m\(s)\u{1b}[0m" : s }

    func describe(_ side: String, _ r: SessionRecord) -> String {
        "\(side) session \(r.id) \(r.client.description) -> \(r.server.description) IPv\(r.ipVersion)"
    }

    public func text(_ result: ComparisonResult) -> String {
        let out = ByteSink(capacity: 4096)
        func line(_ s: String) {
            Escape.terminal(s, into: out)
            out.append(0x0a)
        }
        for pair in result.pairs {
            let delay = Comparison.secondsBetween(pair.a.record.start, pair.b.record.start) - result.clockOffset
            out.append(utf8: bold("pair"))
            line("  \(describe("A", pair.a.record))  =  \(describe("B", pair.b.record))" + String(format3: delay))
            if pair.differences.isEmpty {
                line("  identical")
            }
            for d in pair.differences {
                line("  difference  \(d.message)")
            }
            out.append(0x0a)
        }
        for (side, list) in [("A", result.unpairedA), ("B", result.unpairedB)] {
            for s in list {
                out.append(utf8: bold("unpaired"))
                line("  \(describe(side, s.record)): no session in \(side == "A" ? "B" : "A") matches it")
            }
        }
        if !result.unpairedA.isEmpty || !result.unpairedB.isEmpty { out.append(0x0a) }
        let changed = result.pairs.filter { !$0.differences.isEmpty }.count
        out.append(utf8: bold("summary"))
        out.append(0x0a)
        line("  A  \(fileA)")
        line("  B  \(fileB)")
        line("  \(result.pairs.count) pair(s): \(changed) with differences, \(result.pairs.count - changed) identical; unpaired: \(result.unpairedA.count) in A, \(result.unpairedB.count) in B")
        let offset = result.clockOffset
        line("  clocks: B runs \(offset >= 0 ? "+" : "")\(String(format3raw: offset)) s from A; \(result.nearer == .a ? "A" : "B") is taken as the server's side (\(result.nearerFromHops ? "hop counts" : "no hop difference: A is taken as the sender's"))")
        line("  verdict  " + (result.identical ? "the two captures agree" : "the captures differ: see the differences above"))
        return out.string(from: 0)
    }

    static func sessionObject(_ r: SessionRecord, into o: inout JSONObject) {
        o.int("id", r.id)
        o.endpoint("client", r.client)
        o.endpoint("server", r.server)
        o.timestamp("start", r.start)
        o.string("server_name", r.serverName)
        o.string("verdict", r.verdict.rawValue)
    }

    public func json(_ result: ComparisonResult) -> String {
        var lines: [String] = []
        for pair in result.pairs {
            var o = JSONObject()
            o.string("type", "pair")
            let a = pair.a.record, b = pair.b.record
            o.object("a") { Self.sessionObject(a, into: &$0) }
            o.object("b") { Self.sessionObject(b, into: &$0) }
            o.string("server_side", pair.serverSide == .a ? "a" : "b")
            o.objects("differences", pair.differences) { d, x in
                x.string("what", d.what)
                x.string("direction", d.direction)
                x.string("a", d.a)
                x.string("b", d.b)
                x.string("message", d.message)
            }
            lines.append(o.closed)
        }
        for (side, list) in [("a", result.unpairedA), ("b", result.unpairedB)] {
            for s in list {
                var o = JSONObject()
                o.string("type", "unpaired")
                o.string("side", side)
                Self.sessionObject(s.record, into: &o)
                lines.append(o.closed)
            }
        }
        var o = JSONObject()
        o.string("type", "summary")
        o.object("a") { x in
            x.string("file", fileA)
            x.int("sessions", result.pairs.count + result.unpairedA.count)
        }
        o.object("b") { x in
            x.string("file", fileB)
            x.int("sessions", result.pairs.count + result.unpairedB.count)
        }
        o.int("pairs", result.pairs.count)
        o.int("pairs_with_differences", result.pairs.filter { !$0.differences.isEmpty }.count)
        o.int("unpaired_a", result.unpairedA.count)
        o.int("unpaired_b", result.unpairedB.count)
        o.rawText("clock_offset", String(format3raw: result.clockOffset))
        o.string("server_side", result.nearer == .a ? "a" : "b")
        o.bool("identical", result.identical)
        lines.append(o.closed)
        return lines.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// `  (B 0.002 s later)` when the pair's starts differ by a millisecond or more.
    init(format3 delay: Double) {
        self = abs(delay) >= 0.001 ? "  (B \(String(format3raw: abs(delay))) s \(delay >= 0 ? "later" : "earlier"))" : ""
    }

    /// Three decimals, no Foundation.
    init(format3raw v: Double) {
        let millis = Int64((abs(v) * 1000).rounded())
        let frac = millis % 1000
        self = (v < 0 && millis > 0 ? "-" : "") + "\(millis / 1000)." + String(repeating: "0", count: frac < 10 ? 2 : frac < 100 ? 1 : 0) + "\(frac)"
    }
}
