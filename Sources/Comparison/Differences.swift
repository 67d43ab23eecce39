import Findings
import SMTPCapCore
import SMTPMachine
import TLSHandshake

/// A transcript line with the part of the dialogue it belongs to.
struct PlacedLine: Equatable {
    var direction: Direction
    var text: String
    /// `banner`, `EHLO reply`, `reply to MAIL`, `command MAIL`.
    var section: String
    /// 1-based position within a multi-line reply (0 for commands).
    var index: Int

    static func == (x: PlacedLine, y: PlacedLine) -> Bool { x.direction == y.direction && x.text == y.text }

    var label: String {
        index > 0 && section != "banner" ? "\(section) line \(index)" : section
    }
}

extension Comparison {
    static let maxLines = 2000

    /// Places each transcript line in the dialogue: the banner, the reply to each command, the
    /// commands themselves.
    static func placed(_ transcript: [TranscriptLine]) -> [PlacedLine] {
        var out: [PlacedLine] = []
        // Commands waiting for their reply, oldest first (PIPELINING sends several at once);
        // the first reply, before any command, is the banner.
        var pending: [String] = []
        var head = 0
        var bannerDone = false
        var index = 0
        var replyStart = 0
        for line in transcript.prefix(maxLines) {
            if line.direction == .clientToServer {
                let text = line.text
                if text == "." {
                    pending.append("end of data")
                    out.append(PlacedLine(direction: .clientToServer, text: text, section: "end of data", index: 0))
                } else if text.hasPrefix("<") {
                    let section = text.hasPrefix("<message content") ? "message content" : "client"
                    out.append(PlacedLine(direction: .clientToServer, text: text, section: section, index: 0))
                } else {
                    let verb = String(text.prefix(while: { $0 != " " && $0 != ":" })).uppercased()
                    pending.append(verb)
                    out.append(PlacedLine(direction: .clientToServer, text: text, section: "command \(verb)", index: 0))
                }
                continue
            }
            let section: String
            if !bannerDone {
                section = "banner"
            } else if head < pending.count {
                switch pending[head] {
                case "EHLO": section = "EHLO reply"
                case "HELO": section = "HELO reply"
                case "end of data": section = "reply to end of data"
                case let verb: section = "reply to \(verb)"
                }
            } else {
                section = "reply"
            }
            if index == 0 { replyStart = out.count }
            index += 1
            out.append(PlacedLine(direction: .serverToClient, text: line.text, section: section, index: index))
            // `250-...` continues a reply; `250 ...` (or a line that is not a reply) ends it.
            let bytes = Array(line.text.utf8.prefix(4))
            let continues = bytes.count == 4 && bytes[3] == UInt8(ascii: "-")
            if !continues {
                // A one-line reply needs no line number.
                if index == 1 { out[replyStart].index = 0 }
                index = 0
                if !bannerDone { bannerDone = true } else if head < pending.count { head += 1 }
            }
        }
        return out
    }

    /// The edit script of two line lists: (kept, removed from A, added in B), in order.
    enum Edit { case same(Int, Int), onlyA(Int), onlyB(Int) }

    static func edits(_ a: [PlacedLine], _ b: [PlacedLine]) -> [Edit] {
        // The common head and tail are kept lines; only what lies between needs the table.
        var head = 0
        while head < a.count && head < b.count && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head && tail < b.count - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        var out = (0..<head).map { Edit.same($0, $0) }
        for e in middleEdits(Array(a[head..<(a.count - tail)]), Array(b[head..<(b.count - tail)])) {
            switch e {
            case .same(let i, let j): out.append(.same(i + head, j + head))
            case .onlyA(let i): out.append(.onlyA(i + head))
            case .onlyB(let j): out.append(.onlyB(j + head))
            }
        }
        for k in 0..<tail { out.append(.same(a.count - tail + k, b.count - tail + k)) }
        return out
    }

    static func middleEdits(_ a: [PlacedLine], _ b: [PlacedLine]) -> [Edit] {
        let n = a.count, m = b.count
        // Suffix LCS table, 16-bit (lines are capped at 2000).
        var table = [UInt16](repeating: 0, count: (n + 1) * (m + 1))
        if n > 0 && m > 0 {
            for i in stride(from: n - 1, through: 0, by: -1) {
                for j in stride(from: m - 1, through: 0, by: -1) {
                    table[i * (m + 1) + j] = a[i] == b[j]
                        ? table[(i + 1) * (m + 1) + j + 1] + 1
                        : max(table[(i + 1) * (m + 1) + j], table[i * (m + 1) + j + 1])
                }
            }
        }
        var out: [Edit] = []
        var i = 0, j = 0
        while i < n || j < m {
            if i < n && j < m && a[i] == b[j] {
                out.append(.same(i, j))
                i += 1
                j += 1
            } else if j < m && (i == n || table[i * (m + 1) + j + 1] >= table[(i + 1) * (m + 1) + j]) {
                out.append(.onlyB(j))
                j += 1
            } else {
                out.append(.onlyA(i))
                i += 1
            }
        }
        return out
    }

    static func quoted(_ s: String) -> String { "`\(s)`" }

    /// Every difference between the two sides of a pair.
    static func differences(_ x: ComparedSession, _ y: ComparedSession, nearer: Nearer) -> [Difference] {
        var out: [Difference] = []
        let a = x.record, b = y.record

        if a.client != b.client {
            out.append(Difference(what: "client address", direction: nil, a: a.client.description, b: b.client.description,
                message: "the client is \(a.client.description) in A and \(b.client.description) in B: translated on the path (NAT or a proxy)"))
        }
        if a.server != b.server {
            out.append(Difference(what: "server address", direction: nil, a: a.server.description, b: b.server.description,
                message: "the server is \(a.server.description) in A and \(b.server.description) in B: redirected on the path"))
        }

        // A capture that holds one direction only shows every line of the other as changed
        // on the path: say so first.
        for (name, r, other) in [("A", a, b), ("B", b, a)] {
            if r.serverStats.bytes == 0 && other.serverStats.bytes > 0 {
                out.append(Difference(what: "capture", direction: "server-to-client", a: nil, b: nil,
                    message: "\(name) holds none of the server's bytes of this session (one direction captured): its missing replies are the capture's, not the path's"))
            }
            if r.clientStats.bytes == 0 && other.clientStats.bytes > 0 {
                out.append(Difference(what: "capture", direction: "client-to-server", a: nil, b: nil,
                    message: "\(name) holds none of the client's bytes of this session (one direction captured): its missing commands are the capture's, not the path's"))
            }
        }

        // The dialogue, line by line.
        let la = placed(a.transcript ?? []), lb = placed(b.transcript ?? [])
        let script = edits(la, lb)
        var k = 0
        while k < script.count {
            if case .same = script[k] {
                k += 1
                continue
            }
            // A run of removals and additions between two kept lines: matched up in order
            // per direction as changed lines, the rest removed or added.
            var onlyA: [Int] = [], onlyB: [Int] = []
            while k < script.count {
                switch script[k] {
                case .onlyA(let i): onlyA.append(i)
                case .onlyB(let j): onlyB.append(j)
                case .same: break
                }
                if case .same = script[k] { break }
                k += 1
            }
            for direction in [Direction.serverToClient, .clientToServer] {
                let ra = onlyA.filter { la[$0].direction == direction }
                let rb = onlyB.filter { lb[$0].direction == direction }
                for p in 0..<max(ra.count, rb.count) {
                    let lineA = p < ra.count ? la[ra[p]] : nil
                    let lineB = p < rb.count ? lb[rb[p]] : nil
                    out.append(lineDifference(lineA, lineB, direction: direction, nearer: nearer))
                }
            }
        }
        if a.transcriptTruncated || b.transcriptTruncated {
            out.append(Difference(what: "transcript", direction: nil, a: nil, b: nil,
                message: "a transcript was cut at \(maxLines) lines: later differences are not compared"))
        }

        // TLS.
        let ta = a.tls?.started == true ? a.tls : nil, tb = b.tls?.started == true ? b.tls : nil
        switch (ta, tb) {
        case (nil, nil): break
        case (let t?, nil), (nil, let t?):
            let side = ta != nil ? "A" : "B"
            let version = t.serverHello.map { TLSNames.version($0.version) } ?? "TLS"
            out.append(Difference(what: "tls", direction: nil, a: ta.map { _ in version }, b: tb.map { _ in version },
                message: "TLS only in \(side): the other side's session stayed in plaintext (a box on the path terminates one of them)"))
        case (let t?, let u?):
            let va = t.serverHello.map { TLSNames.version($0.version) }, vb = u.serverHello.map { TLSNames.version($0.version) }
            if va != vb {
                out.append(Difference(what: "tls version", direction: nil, a: va, b: vb,
                    message: "TLS version \(va ?? "unseen") in A, \(vb ?? "unseen") in B"))
            }
            let ca = t.serverHello.map { TLSNames.cipherSuite($0.cipherSuite) }, cb = u.serverHello.map { TLSNames.cipherSuite($0.cipherSuite) }
            if ca != cb {
                out.append(Difference(what: "tls cipher", direction: nil, a: ca, b: cb,
                    message: "cipher \(ca ?? "unseen") in A, \(cb ?? "unseen") in B"))
            }
            let fa = t.certificate?.sha256, fb = u.certificate?.sha256
            if fa != fb && (fa != nil || fb != nil) {
                out.append(Difference(what: "certificate", direction: nil, a: fa, b: fb,
                    message: "certificate \(fa ?? "unseen") in A, \(fb ?? "unseen") in B: a box on the path completes TLS with its own"))
            }
        }

        // The path, per direction (routes there and back may differ in length): the
        // server's packets cannot arrive with fewer hops at the capture nearer the client than
        // at the one nearer the server, nor the client's the other way round. If they do,
        // something between the two points answers for one end.
        let near = nearer == .a ? x.path : y.path, far = nearer == .a ? y.path : x.path
        if let sn = near.serverHops, let sf = far.serverHops, sf < sn {
            out.append(Difference(what: "path", direction: "server-to-client", a: x.path.serverHops.map { "server \($0) hops" },
                                  b: y.path.serverHops.map { "server \($0) hops" },
                message: "the server's packets arrive \(sf) hops away at the client's side but \(sn) at the server's: something between them answers for the server"))
        }
        if let cn = near.clientHops, let cf = far.clientHops, cn < cf {
            out.append(Difference(what: "path", direction: "client-to-server", a: x.path.clientHops.map { "client \($0) hops" },
                                  b: y.path.clientHops.map { "client \($0) hops" },
                message: "the client's packets arrive \(cn) hops away at the server's side but \(cf) at the client's: something between them answers for the client"))
        }
        if let pa = x.path.synAck, let pb = y.path.synAck {
            var na = pa, nb = pb
            if a.ipVersion == 6 && na.mss != 0 { na.mss &+= 20 }
            if b.ipVersion == 6 && nb.mss != 0 { nb.mss &+= 20 }
            if na != nb {
                out.append(Difference(what: "syn-ack", direction: "server-to-client", a: pa.description, b: pb.description,
                    message: "SYN-ACK options \(pa.description) in A, \(pb.description) in B: another TCP stack answered (or a box rewrote them)"))
            }
        }
        if a.verdict != b.verdict {
            out.append(Difference(what: "verdict", direction: nil, a: a.verdict.rawValue, b: b.verdict.rawValue,
                message: "verdict \(a.verdict.rawValue) in A, \(b.verdict.rawValue) in B"))
        }
        return out
    }

    /// One changed, deleted or added line, worded from where it was sent: server lines are
    /// sent on the server's side and received on the client's, commands the other way.
    static func lineDifference(_ lineA: PlacedLine?, _ lineB: PlacedLine?, direction: Direction, nearer: Nearer) -> Difference {
        let fromServer = direction == .serverToClient
        // The sending side's capture is upstream; its numbering names the line.
        let upstreamIsA = fromServer ? nearer == .a : nearer == .b
        let up = upstreamIsA ? lineA : lineB, down = upstreamIsA ? lineB : lineA
        let label = (up ?? down)!.label
        let sender = fromServer ? "server" : "client", receiver = fromServer ? "client" : "server"
        let message: String
        switch (up, down) {
        case (let u?, let d?):
            message = "\(label): \(sender) sent \(quoted(u.text)), \(receiver) received \(quoted(d.text))"
        case (let u?, nil):
            message = "\(label): \(sender) sent \(quoted(u.text)), \(receiver) did not receive it (deleted on the path)"
        case (nil, let d?):
            message = "\(label): \(receiver) received \(quoted(d.text)), which the \(sender) did not send (added on the path)"
        case (nil, nil):
            message = label
        }
        return Difference(what: label, direction: fromServer ? "server-to-client" : "client-to-server",
                          a: lineA?.text, b: lineB?.text, message: message)
    }
}

extension Comparison {
    /// Each line's direction and label (`EHLO reply line 3`), for tests.
    public static func placedForTesting(_ transcript: [TranscriptLine]) -> [(Direction, String)] {
        placed(transcript).map { ($0.direction, $0.label) }
    }
}
