import SMTPCapCore
import TCPReassembly
import TLSHandshake

/// Options of the SMTP machine that come from the command line.
public struct SessionOptions: Sendable {
    /// Keep a `C:`/`S:` transcript (without credentials or message content).
    public var transcript = false
    /// Ports whose sessions are TLS from the first byte (SMTPS).
    public var implicitTLSPorts: Set<UInt16> = [465]
    public var maxTranscriptLines = 2000
    public var maxMessagesListed = 1000
    /// Keep envelope addresses (MAIL FROM, RCPT TO) per message, and show them in the
    /// transcript; false (`--no-addresses`) keeps only the recipients' domains.
    public var recordAddresses = true
    /// Keep the recipients' domains per session (the TLS report's policy domains).
    public var recordRecipientDomains = false

    public init() {}
}

/// Follows one SMTP session from its two reassembled byte streams. Pure: no I/O, no pcap.
///
/// It does not check the dialogue's correctness; as Zeek's analyzer does, it guesses the state
/// from (command, reply) pairs, assumes pipelining, and resynchronises after gaps. Each
/// direction is an explicit state (`ClientState`, `ServerState`) whose cases carry their own
/// data. The client side (`ClientSide.swift`) reads commands and content, the server side
/// (`ServerSide.swift`) assembles replies and pairs each with its command, and
/// `STARTTLSUpgrade.swift` handles the bytes between a 220 to STARTTLS and TLS. It records
/// facts only: findings and the verdict are decided by the Findings layer.
///
/// Message content and AUTH payloads are counted, never kept.
public struct SMTPSession: StreamConsumer {
    static let maxKeywords = 64
    /// EHLO replies kept per session; later ones are counted.
    static let maxEHLOListed = 16

    public internal(set) var record: SessionRecord
    let options: SessionOptions

    var client: ClientState
    var server: ServerState
    var milestones: Milestones = []
    var clientLines = LineFramer()
    var serverLines = LineFramer()
    var pending = PendingCommands()
    var reply: ReplyInProgress?
    /// The message whose content is being sent (DATA content, or a BDAT transaction without
    /// LAST yet), as an index into `record.messages`.
    var openMessage: Int?
    var recipients = 0
    var envelope = Envelope()
    var serverBytesSeen: UInt64 = 0
    var tlsClient = TLSDirectionReader()
    var tlsServer = TLSDirectionReader()
    /// Bytes of wire text kept: EHLO keywords listed, and the lines of the reply in progress.
    var keptTextBytes = 0
    var replyTextBytes = 0
    var serverAfter220 = ServerPlaintextAfter220()
    var buffers = BufferTally()

    public init(info: ConnectionInfo, options: SessionOptions = SessionOptions()) {
        let implicitTLS = options.implicitTLSPorts.contains(info.server.port)
        record = SessionRecord(info: info, transcript: options.transcript, implicitTLS: implicitTLS)
        self.options = options
        client = implicitTLS ? .tls : .commands
        server = implicitTLS ? .tls : .replies
        // A mid-session start (no handshake) takes the first partial line as it comes: the
        // framer does not skip to a line end (its default).
    }

    // MARK: - StreamConsumer

    /// The buffers that input can grow: held pipelined content, pre-TLS bytes, the partial
    /// lines, the TLS readers' records, the pending commands and the listed messages.
    public var bufferedBytes: Int {
        mutating get {
            if let known = buffers.known { return known }
            let sum = countBuffered()
            buffers.known = sum
            return sum
        }
    }

    private mutating func countBuffered() -> Int {
        var held = 0
        switch client {
        case .holding(let h): held += h.bytes.capacity
        case .preTLS(let b): held += b.bytes.capacity
        case .commands, .authData, .content, .chunk, .tls, .opaque, .modifying: break
        }
        if case .preTLS(let b) = server { held += b.bytes.capacity }
        held += serverAfter220.unread.capacity
        return held + clientLines.capacity + serverLines.capacity
            + tlsClient.bufferedBytes + tlsServer.bufferedBytes + pending.heapBytes
            + record.messages.capacity * MemoryLayout<MessageFacts>.stride
            + (record.transcript?.count ?? 0) * 96 + keptTextBytes + replyTextBytes + envelope.keptBytes
    }

    public mutating func data(_ bytes: Span<UInt8>, _ direction: Direction, _ meta: ChunkMeta) {
        if record.end < meta.timestamp { record.end = meta.timestamp }
        switch direction {
        case .clientToServer:
            if !client.onlyCounts { buffers.invalidate() }
            clientData(bytes, meta)
        case .serverToClient:
            serverBytesSeen &+= UInt64(bytes.count)
            if case .opaque = server {} else { buffers.invalidate() }
            serverData(bytes, meta)
        }
    }

    public mutating func gap(_ direction: Direction, lost: UInt64?, _ meta: ChunkMeta) {
        buffers.invalidate()
        milestones.insert(.gapSeen)
        note(.captureGap)
        switch direction {
        case .clientToServer: clientGap(lost: lost ?? 0, meta)
        case .serverToClient: serverGap(meta)
        }
    }

    /// The connection went on after a pause longer than the idle timeout: the longest such
    /// pause is reported.
    public mutating func resumed(afterIdleSeconds seconds: Int64, _ meta: ChunkMeta) {
        record.resumedAfterIdleSeconds = max(record.resumedAfterIdleSeconds ?? 0, seconds)
    }

    public mutating func closed(_ direction: Direction, _ reason: CloseReason, _ meta: ChunkMeta) {
        buffers.invalidate()
        if meta.timestamp.seconds != 0, record.end < meta.timestamp { record.end = meta.timestamp }
        if record.closeReason == nil || reason == .rst { record.closeReason = reason }
        switch direction {
        case .clientToServer:
            milestones.insert(.clientClosed)
            releaseHeld(assumeSuccess: true, meta)
        case .serverToClient:
            milestones.insert(.serverClosed)
            releaseHeld(assumeSuccess: false, meta)
        }
    }

    /// Ends the session: flushes what is open and hands over the record of facts. The session
    /// is spent afterwards (it keeps an empty placeholder record).
    public mutating func finish(client clientStats: DirectionStats, server serverStats: DirectionStats,
                                end: Timestamp) -> SessionRecord {
        let meta = ChunkMeta(frame: 0, timestamp: end)
        releaseHeld(assumeSuccess: true, meta)
        switch client {
        case .content(let scanner):
            // The capture stopped inside the content.
            addToOpenMessage(bytes: scanner.bytes)
            updateOpenMessage { $0.truncated = true }
        case .chunk:
            updateOpenMessage { $0.truncated = true }
        default:
            break
        }
        fallBackToPlaintext(meta)
        recordResponseInjection()
        // A line still open at the end (a megabyte with no line end) is noted too.
        noteLongLine(clientLines.length, command: true)
        noteLongLine(serverLines.length, command: false)
        record.clientStats = clientStats
        record.serverStats = serverStats
        if record.end < end { record.end = end }
        record.complete = record.handshakeSeen && clientStats.gaps == 0 && serverStats.gaps == 0
            && (clientStats.finSeen || clientStats.rstSeen || serverStats.rstSeen)
            && (serverStats.finSeen || clientStats.rstSeen || serverStats.rstSeen)
        record.evidence.serverAnswered = serverBytesSeen > 0 || milestones.contains(.serverClosed)
        record.evidence.serverTLSRecords = tlsServer.recordsSeen
        var out = SessionRecord.placeholder
        swap(&out, &record)
        return out
    }

    // MARK: - Shared helpers

    mutating func note(_ anomaly: Anomaly) {
        record.anomalies[anomaly, default: 0] += 1
    }

    /// Lines over RFC 5321's 512 bytes, and lines past what the framer keeps.
    mutating func noteLongLine(_ wireLength: Int, command: Bool) {
        guard wireLength > 512 else { return }
        note(wireLength > LineFramer.keep ? .lineTruncated : command ? .commandLineOver512 : .replyLineOver512)
    }

    mutating func transcript(_ direction: Direction, _ meta: ChunkMeta, _ text: @autoclosure () -> String) {
        guard record.transcript != nil else { return }
        if record.transcript!.count >= options.maxTranscriptLines {
            record.transcriptTruncated = true
            return
        }
        record.transcript!.append(TranscriptLine(direction: direction, frame: meta.frame, text: text()))
    }

    /// Changes the TLS facts, creating them at the first TLS byte.
    mutating func updateTLS(_ change: (inout TLSFacts) -> Void) {
        if record.tls == nil { record.tls = TLSFacts() }
        change(&record.tls!)
    }

    var tlsStarted: Bool { record.tls?.started == true }
}
