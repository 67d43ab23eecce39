import SMTPCapTestSupport
import TLSHandshake
import Findings
import SMTPCapCore
import SMTPMachine
import TCPReassembly

/// One step of a dialogue: who sends what, in one frame.
struct Step {
    var direction: Direction
    var bytes: [UInt8]

    static func c(_ s: String) -> Step { Step(direction: .clientToServer, bytes: Array(s.utf8)) }
    static func s(_ s: String) -> Step { Step(direction: .serverToClient, bytes: Array(s.utf8)) }
    static func c(bytes: [UInt8]) -> Step { Step(direction: .clientToServer, bytes: bytes) }
    static func s(bytes: [UInt8]) -> Step { Step(direction: .serverToClient, bytes: bytes) }
}

func info(serverPort: UInt16 = 25, handshake: Bool = true) -> ConnectionInfo {
    ConnectionInfo(
        id: 1,
        client: Endpoint(address: IPAddress(ipv4: 0xc633_640a), port: 40_000),
        server: Endpoint(address: IPAddress(ipv4: 0xcb00_7119), port: serverPort),
        serverEvidence: .handshake, handshakeSeen: handshake, firstFrame: 1,
        start: Timestamp(seconds: 1_700_000_000, nanoseconds: 0))
}

/// Feeds a dialogue to a fresh machine, each step split as asked, and returns the record.
func run(_ steps: [Step], split: Split = .whole, serverPort: UInt16 = 25, handshake: Bool = true,
         transcript: Bool = false, addresses: Bool = true, gaps: [Int: (Direction, UInt64)] = [:]) -> SessionRecord {
    var options = SessionOptions()
    options.transcript = transcript
    options.recordAddresses = addresses
    options.recordRecipientDomains = true
    var machine = SMTPSession(info: info(serverPort: serverPort, handshake: handshake), options: options)
    var rng = split.generator()
    var client = DirectionStats(), server = DirectionStats()
    for (index, step) in steps.enumerated() {
        let meta = ChunkMeta(frame: UInt64(index + 1), timestamp: Timestamp(seconds: 1_700_000_000 + Int64(index), nanoseconds: 0))
        if let (direction, lost) = gaps[index] {
            machine.gap(direction, lost: lost, meta)
            if direction == .clientToServer { client.gaps += 1; client.lostBytes += lost } else { server.gaps += 1; server.lostBytes += lost }
        }
        for piece in split.pieces(step.bytes, using: &rng) {
            let (guarded, window) = Split.guarded(piece)
            machine.data(guarded.span.extracting(window), step.direction, meta)
        }
        if step.direction == .clientToServer { client.bytes += UInt64(step.bytes.count) } else { server.bytes += UInt64(step.bytes.count) }
    }
    let end = ChunkMeta(frame: UInt64(steps.count), timestamp: Timestamp(seconds: 1_700_000_100, nanoseconds: 0))
    client.finSeen = true
    server.finSeen = true
    machine.closed(.clientToServer, .fin, end)
    machine.closed(.serverToClient, .fin, end)
    var record = machine.finish(client: client, server: server, end: end.timestamp)
    SessionFindings.evaluate(&record)
    return record
}

/// The facts a test compares across splits.
struct Facts: Equatable, CustomStringConvertible {
    var ehlo: [Bool]
    var masked: [[String]]
    var starttls: STARTTLSFacts
    var tlsStarted: Bool
    var tlsVersion: String?
    var auth: String?
    var messages: [String]
    var findings: [String]
    var verdict: Verdict
    var greeting: String?
    var banner: String?

    init(_ r: SessionRecord) {
        ehlo = r.ehlo.map(\.starttls)
        masked = r.ehlo.map(\.maskedKeywords)
        starttls = r.starttls
        tlsStarted = r.tls?.started ?? false
        tlsVersion = r.tls?.serverHello.map { TLSNames.version($0.version) }
        auth = r.auth.map { "\($0.mechanism) plaintext=\($0.plaintext) reply=\($0.reply.map(String.init) ?? "-")" }
        messages = r.messages.map { "\($0.method.rawValue) \($0.bytes) rcpt=\($0.recipients) reply=\($0.reply.map(String.init) ?? "-")\($0.truncated ? " cut" : "")" }
        findings = r.findings.map { "\($0.code.rawValue)@\($0.frame.map(String.init) ?? "-")" }
        verdict = r.verdict
        greeting = r.greeting
        banner = r.banner
    }

    var description: String {
        "ehlo=\(ehlo) starttls=\(starttls) tls=\(tlsStarted) \(tlsVersion ?? "") auth=\(auth ?? "-") messages=\(messages) findings=\(findings) verdict=\(verdict)"
    }
}
