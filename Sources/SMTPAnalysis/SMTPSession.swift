import PacketDecoding
import TCPReassembly

/// Options of the SMTP machine that come from the command line.
public struct SessionOptions: Sendable {
    /// Keep a `C:`/`S:` transcript (without credentials or message content).
    public var transcript = false
    /// Ports whose sessions are TLS from the first byte (SMTPS).
    public var implicitTLSPorts: Set<UInt16> = [465]
    public var maxTranscriptLines = 2000
    public var maxMessagesListed = 1000

    public init() {}
}

/// Follows one SMTP session from its two reassembled byte streams. Pure: no I/O, no pcap.
/// It does not check the dialogue's correctness; as Zeek's analyzer does, it guesses the
/// state from (command, reply) pairs, assumes pipelining, and resynchronises after gaps.
/// Message content and AUTH payloads are counted, never kept.
public struct SMTPSession: StreamConsumer {
    enum ClientMode: Equatable {
        case command
        /// After a 334: the next line is an AUTH payload (a secret).
        case authResponse
        /// Waiting for the reply to DATA or STARTTLS; later bytes are held until it comes.
        case holding
        case body
        case bdat
        /// After a 220 to STARTTLS, before the first TLS record.
        case preTLS
        case tls
        /// Nothing more can be understood (TLS after a gap, say): count only.
        case opaque
    }

    enum ServerMode: Equatable {
        case replies
        case preTLS
        case tls
        case opaque
    }

    static let maxPending = 1000
    static let maxHeld = 64 * 1024
    static let maxKeywords = 64
    /// EHLO replies kept per session; later ones are counted.
    static let maxEHLOListed = 16

    public internal(set) var record: SessionRecord
    let options: SessionOptions

    var clientMode = ClientMode.command
    var serverMode = ServerMode.replies
    var clientLines = LineFramer()
    var serverLines = LineFramer()
    var pending: [PendingCommand] = []
    var pendingHead = 0
    var reply: ReplyInProgress?
    var held: [UInt8] = []
    var heldMeta: ChunkMeta?
    var body = BodyScanner()
    var bdatRemaining: UInt64 = 0
    var bdatLast = false
    /// The message whose content is being sent (DATA content, or a BDAT transaction
    /// without LAST yet), as an index into `record.messages`.
    var openMessage: Int?
    var recipients = 0
    var serverBytesSeen: UInt64 = 0
    var greetingSeen = false
    var ehloRejected = false
    var starttlsAccepted = false
    var preTLSClient: [UInt8] = []
    var preTLSServer: [UInt8] = []
    var preTLSClientLines = 0
    var responseInjectionBytes = 0
    var responseInjectionFrame: UInt64?
    var commandInjection: (bytes: Int, frame: UInt64)?
    var tlsClient = TLSDirectionReader()
    var tlsServer = TLSDirectionReader()
    var plaintextCommandsAfterOffer = false
    var firstPlaintextAfterOfferFrame: UInt64?
    var clientClosed = false
    var serverClosed = false
    var sawGap = false
    /// Bytes of wire text kept: EHLO keywords listed, and the lines of the reply in progress.
    var keptTextBytes = 0
    var replyTextBytes = 0
    /// `bufferedBytes` as last computed, and whether input since may have changed it: content,
    /// BDAT chunks and encrypted bytes change no buffer, and they are most of the bytes (the
    /// sum reads a dozen heap headers).
    var bufferedCache = 0
    var bufferedStale = true

    @inline(__always)
    public init(info: ConnectionInfo, options: SessionOptions = SessionOptions()) {
        // Everything decided in locals first, each property stored once: mutating the finished
        // session here made the compiler build it aside and copy it out (a retain per field).
        let implicitTLS = options.implicitTLSPorts.contains(info.server.port)
        record = SessionRecord(info: info, transcript: options.transcript, implicitTLS: implicitTLS)
        self.options = options
        clientMode = implicitTLS ? .tls : .command
        serverMode = implicitTLS ? .tls : .replies
        // A mid-session start (no handshake) takes the first partial line as it comes: the
        // framer does not skip to a line end (its default).
    }

    // MARK: - StreamConsumer

    /// The buffers that input can grow: held pipelined content, pre-TLS bytes, the partial
    /// lines, the TLS readers' records, the pending commands and the listed messages.
    public var bufferedBytes: Int {
        mutating get {
            if bufferedStale {
                bufferedCache = countBuffered()
                bufferedStale = false
            }
            return bufferedCache
        }
    }

    /// `mutating` only so it reads the session in place: a non-mutating call from a mutating
    /// context copies the whole session (1.2 KB) first.
    private mutating func countBuffered() -> Int {
        held.capacity + preTLSClient.capacity + preTLSServer.capacity
            + clientLines.capacity + serverLines.capacity
            + tlsClient.bufferedBytes + tlsServer.bufferedBytes
            + pending.capacity * MemoryLayout<PendingCommand>.stride
            + record.messages.capacity * MemoryLayout<MessageFacts>.stride
            + (record.transcript?.count ?? 0) * 96
            + keptTextBytes + replyTextBytes
    }

    public mutating func data(_ bytes: UnsafeRawBufferPointer, _ direction: Direction, _ meta: ChunkMeta) {
        if record.end < meta.timestamp { record.end = meta.timestamp }
        switch direction {
        case .clientToServer: clientData(bytes, meta)
        case .serverToClient:
            serverBytesSeen &+= UInt64(bytes.count)
            if serverMode != .opaque { bufferedStale = true }
            serverData(bytes, meta)
        }
    }

    public mutating func gap(_ direction: Direction, lost: UInt64?, _ meta: ChunkMeta) {
        bufferedStale = true
        sawGap = true
        note("capture-gap")
        switch direction {
        case .clientToServer: clientGap(lost: lost ?? 0, meta)
        case .serverToClient: serverGap(meta)
        }
    }

    public mutating func closed(_ direction: Direction, _ reason: CloseReason, _ meta: ChunkMeta) {
        bufferedStale = true
        if meta.timestamp.seconds != 0, record.end < meta.timestamp { record.end = meta.timestamp }
        if record.closeReason == nil || reason == .rst { record.closeReason = reason }
        switch direction {
        case .clientToServer:
            clientClosed = true
            if clientMode == .holding { releaseHeld(assumeSuccess: true, meta) }
        case .serverToClient:
            serverClosed = true
            if clientMode == .holding { releaseHeld(assumeSuccess: false, meta) }
        }
    }

    // MARK: - Client direction

    mutating func clientData(_ bytes: UnsafeRawBufferPointer, _ meta: ChunkMeta) {
        var p = 0
        while p < bytes.count {
            switch clientMode {
            case .body, .bdat, .opaque: break
            default: bufferedStale = true
            }
            switch clientMode {
            case .command, .authResponse:
                if clientLines.skipping && Self.plausibleLineStart(bytes, at: p, server: false) { clientLines.skipping = false }
                if clientLines.consume(bytes, from: &p) {
                    let length = clientLines.length
                    var line = clientLines.takeLine()
                    clientLine(line, wireLength: length, meta)
                    clientLines.giveBack(&line)
                }
            case .holding:
                if heldMeta == nil { heldMeta = meta }
                let n = min(bytes.count - p, Self.maxHeld - held.count)
                held.append(contentsOf: UnsafeRawBufferPointer(rebasing: bytes[p..<(p + n)]))
                p += n
                if held.count >= Self.maxHeld {
                    // A client that sends this much before the reply is sending content.
                    note("held-bytes-limit")
                    releaseHeld(assumeSuccess: true, meta)
                }
            case .body:
                if body.scan(bytes, from: &p) { endOfData(meta) }
            case .bdat:
                let n = Int(min(bdatRemaining, UInt64(bytes.count - p)))
                bdatRemaining -= UInt64(n)
                p += n
                addToOpenMessage(bytes: UInt64(n))
                if bdatRemaining == 0 { endOfChunk(meta) }
            case .preTLS:
                clientPreTLS(bytes, from: &p, meta)
            case .tls:
                let rest = UnsafeRawBufferPointer(rebasing: bytes[p...])
                p = bytes.count
                feedTLS(rest, fromServer: false, meta)
            case .opaque:
                p = bytes.count
            }
        }
    }

    mutating func clientLine(_ line: [UInt8], wireLength: Int, _ meta: ChunkMeta) {
        if wireLength > 512 { note(wireLength > LineFramer.keep ? "line-truncated" : "command-line-over-512") }
        if clientMode == .authResponse {
            // A credential: counted, never kept.
            transcript(.clientToServer, meta, "<AUTH data: \(wireLength) bytes>")
            clientMode = .command
            enqueue(.authResponse, meta)
            return
        }
        if line.isEmpty { return }
        let command = CommandLine(line)
        record.commands += 1
        if !command.isKnownVerb {
            note("unknown-command")
        }
        let inPlaintext = record.tls?.started != true
        switch command.kind {
        case .ehlo, .helo:
            transcript(.clientToServer, meta, "\(command.verb) \(wireText(command.argument, limit: 100))")
            if record.heloName == nil { record.heloName = wireText(command.argument, limit: 100) }
            if command.kind == .helo, ehloRejected, record.findings.allSatisfy({ $0.code != .ehloRejected }) {
                record.findings.append(Finding(code: .ehloRejected, frame: meta.frame,
                    message: "the server rejected EHLO and the client fell back to HELO: no extensions, so no STARTTLS"))
            }
            enqueue(command.kind, meta)
        case .starttls:
            transcript(.clientToServer, meta, "STARTTLS")
            record.starttls.requested = true
            enqueue(.starttls, meta)
            if serverBytesSeen > 0 && !serverClosed { clientMode = .holding }
        case .auth:
            // Only the mechanism is kept; an initial response is a secret.
            var mechEnd = command.argument.startIndex
            while mechEnd < command.argument.endIndex, command.argument[mechEnd] != 0x20 { mechEnd += 1 }
            let mechanism = wireText(command.argument[command.argument.startIndex..<mechEnd], limit: 32).uppercased()
            let initial = command.argument.endIndex - mechEnd
            transcript(.clientToServer, meta, initial > 0
                       ? "AUTH \(mechanism) <initial response: \(initial - 1) bytes>" : "AUTH \(mechanism)")
            if record.auth == nil || (inPlaintext && record.auth?.plaintext == false) {
                record.auth = AuthFacts(mechanism: mechanism, plaintext: inPlaintext, frame: meta.frame, reply: nil)
            }
            noteCommandAfterOffer(meta)
            enqueue(.auth, meta)
        case .mail:
            transcript(.clientToServer, meta, "MAIL \(wireText(command.argument, limit: 200))")
            noteCommandAfterOffer(meta)
            enqueue(.mail, meta)
        case .rcpt:
            transcript(.clientToServer, meta, "RCPT \(wireText(command.argument, limit: 200))")
            noteCommandAfterOffer(meta)
            enqueue(.rcpt, meta)
        case .data:
            transcript(.clientToServer, meta, "DATA")
            noteCommandAfterOffer(meta)
            enqueue(.data, meta)
            if serverBytesSeen > 0 && !serverClosed {
                clientMode = .holding
            } else {
                // No server side in the capture: assume 354 and read content.
                startMessage(.data, frame: meta.frame)
                clientMode = .body
                body = BodyScanner()
            }
        case .bdat:
            noteCommandAfterOffer(meta)
            guard let (size, last) = parseBDAT(command.argument) else {
                transcript(.clientToServer, meta, "BDAT \(wireText(command.argument, limit: 40)) (invalid)")
                note("bdat-invalid")
                enqueue(.bdatInvalid, meta)
                return
            }
            transcript(.clientToServer, meta, "BDAT \(size)\(last ? " LAST" : "") <content: \(size) bytes>")
            if openMessage == nil { startMessage(.bdat, frame: meta.frame) }
            updateOpenMessage { $0.chunks += 1 }
            enqueue(.bdat(last: last), meta, message: openMessage)
            bdatRemaining = size
            bdatLast = last
            if size > 0 { clientMode = .bdat } else if last { openMessage = nil }
        case .rset:
            transcript(.clientToServer, meta, "RSET")
            enqueue(.rset, meta)
        case .quit:
            transcript(.clientToServer, meta, "QUIT")
            enqueue(.quit, meta)
        case .authResponse, .dataEnd, .bdatInvalid:
            break  // never produced by CommandLine
        case .other:
            let shown = command.isKnownVerb
                ? "\(command.verb) \(wireText(command.argument, limit: 100))"
                : "<unknown command: \(wireText(line, limit: 40))>"
            transcript(.clientToServer, meta, shown)
            enqueue(.other, meta)
        }
    }

    mutating func noteCommandAfterOffer(_ meta: ChunkMeta) {
        if record.starttls.offered && !record.starttls.requested && record.tls?.started != true && !plaintextCommandsAfterOffer {
            plaintextCommandsAfterOffer = true
            firstPlaintextAfterOfferFrame = meta.frame
        }
    }

    mutating func enqueue(_ kind: CommandKind, _ meta: ChunkMeta, message: Int? = nil) {
        if pending.count - pendingHead >= Self.maxPending {
            note("pending-commands-limit")
            pendingHead += 1
        }
        pending.append(PendingCommand(kind: kind, frame: meta.frame, message: message))
    }

    mutating func dequeue() -> PendingCommand? {
        guard pendingHead < pending.count else { return nil }
        let command = pending[pendingHead]
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll(keepingCapacity: true)
            pendingHead = 0
        } else if pendingHead > 64 && pendingHead * 2 > pending.count {
            pending.removeFirst(pendingHead)
            pendingHead = 0
        }
        return command
    }

    mutating func clearPending() {
        pending.removeAll(keepingCapacity: true)
        pendingHead = 0
    }

    var pendingIsEmpty: Bool { pendingHead >= pending.count }

    mutating func releaseHeld(assumeSuccess: Bool, _ meta: ChunkMeta) {
        guard clientMode == .holding else { return }
        // Which command are we waiting for? The newest DATA or STARTTLS in the queue.
        let waitingFor = pending[pendingHead...].last { $0.kind == .data || $0.kind == .starttls }
        if assumeSuccess, let waitingFor, waitingFor.kind == .data {
            startMessage(.data, frame: waitingFor.frame)
            body = BodyScanner()
            clientMode = .body
        } else {
            clientMode = .command
        }
        replayHeld(meta)
    }

    mutating func replayHeld(_ meta: ChunkMeta) {
        guard !held.isEmpty else { heldMeta = nil; return }
        let bytes = held
        let replayMeta = heldMeta ?? meta
        held.removeAll()
        heldMeta = nil
        bytes.withUnsafeBytes { clientData($0, replayMeta) }
    }

    // MARK: - Messages

    mutating func startMessage(_ method: MessageMethod, frame: UInt64) {
        // DATA inside a BDAT transaction that never sent LAST: still one mail transaction.
        if openMessage != nil { return }
        let message = MessageFacts(method: method, frame: frame, bytes: 0, recipients: recipients, reply: nil)
        if record.messages.count < options.maxMessagesListed {
            record.messages.append(message)
            openMessage = record.messages.count - 1
        } else {
            record.messagesNotListed += 1
            openMessage = nil
        }
    }

    mutating func updateOpenMessage(_ change: (inout MessageFacts) -> Void) {
        if let openMessage { change(&record.messages[openMessage]) }
    }

    mutating func addToOpenMessage(bytes: UInt64) {
        updateOpenMessage { $0.bytes &+= bytes }
    }

    mutating func endOfData(_ meta: ChunkMeta) {
        bufferedStale = true
        let size = body.bytes
        addToOpenMessage(bytes: size)
        transcript(.clientToServer, meta, "<message content: \(size) bytes>")
        transcript(.clientToServer, meta, ".")
        body = BodyScanner()
        clientMode = .command
        enqueue(.dataEnd, meta, message: openMessage)
        openMessage = nil
    }

    mutating func endOfChunk(_ meta: ChunkMeta) {
        bufferedStale = true
        clientMode = .command
        if bdatLast { openMessage = nil }  // sent; the reply to BDAT LAST finishes it
    }

    /// The final reply to a message's content.
    mutating func finishMessage(_ index: Int?, reply: Int, frame: UInt64) {
        guard let index, index < record.messages.count else { return }
        record.messages[index].reply = reply
        record.messages[index].replyFrame = frame
    }

    // MARK: - Server direction

    mutating func serverData(_ bytes: UnsafeRawBufferPointer, _ meta: ChunkMeta) {
        var p = 0
        while p < bytes.count {
            switch serverMode {
            case .replies:
                if serverLines.skipping && Self.plausibleLineStart(bytes, at: p, server: true) { serverLines.skipping = false }
                if let (line, length) = serverLines.wholeLine(bytes, from: &p) {
                    serverLine(line, wireLength: length, meta)
                } else if serverLines.consume(bytes, from: &p) {
                    let length = serverLines.length
                    var line = serverLines.takeLine()
                    // Lent as bytes: passing the array itself retained and released it per line.
                    line.withUnsafeBytes { serverLine($0, wireLength: length, meta) }
                    serverLines.giveBack(&line)
                }
            case .preTLS:
                serverPreTLS(bytes, from: &p, meta)
            case .tls:
                let rest = UnsafeRawBufferPointer(rebasing: bytes[p...])
                p = bytes.count
                feedTLS(rest, fromServer: true, meta)
            case .opaque:
                p = bytes.count
            }
        }
    }

    mutating func serverLine(_ line: UnsafeRawBufferPointer, wireLength: Int, _ meta: ChunkMeta) {
        if wireLength > 512 { note(wireLength > LineFramer.keep ? "line-truncated" : "reply-line-over-512") }
        guard let (code, more) = parseReplyLine(line) else {
            if !line.isEmpty { note("not-a-reply-line") }
            if reply == nil { return }
            // A broken continuation: end the reply here, marked unfinished.
            var done = reply!
            done.damaged = true
            reply = nil
            completeReply(done, meta)
            return
        }
        if reply == nil || reply!.code != code {
            if var unfinished = reply {
                unfinished.damaged = true  // its final line never came
                completeReply(unfinished, meta)
            }
            reply = ReplyInProgress(code: code, frame: meta.frame)
        }
        // Text is kept only where it is used: the greeting, EHLO keywords, the transcript.
        let wanted = !greetingSeen || record.transcript != nil
            || (pendingHead < pending.count && pending[pendingHead].kind == .ehlo)
        // An endless reply costs no allocation per line past the kept ones.
        if wanted && (reply!.lines.count < Self.maxKeywords + 1 || record.transcript != nil) {
            let text = line.count > 4 ? wireText(bytes: UnsafeRawBufferPointer(rebasing: line[4...]), limit: 200) : ""
            if reply!.lines.count < Self.maxKeywords + 1 {
                if reply!.lines.isEmpty { reply!.lines.reserveCapacity(16) }  // one allocation for a typical EHLO reply
                reply!.lines.append(text)
                replyTextBytes += text.utf8.count
            }
            transcript(.serverToClient, meta, "\(code)\(more ? "-" : " ")\(text)")
        }
        reply!.lineCount += 1
        if reply!.lineCount > 10_000 && reply!.lineCount % 10_000 == 1 { note("reply-over-10000-lines") }
        if !more {
            let done = reply!
            reply = nil
            completeReply(done, meta)
        }
    }

    mutating func completeReply(_ reply: ReplyInProgress, _ meta: ChunkMeta) {
        replyTextBytes = 0
        // The greeting: a 220 (or a refusal) before any other reply. A client may talk first,
        // and some servers send no greeting at all (the first reply then answers a command).
        let refusal = reply.code == 421 || reply.code == 554
        if !greetingSeen && (reply.code == 220 || pendingIsEmpty || (record.handshakeSeen && refusal)) {
            greetingSeen = true
            record.bannerCode = reply.code
            let first = reply.lines.first ?? ""
            record.banner = first
            if record.serverName == nil, case let name = firstWord(first), !name.isEmpty, !isMaskedBanner(first) {
                record.serverName = prefixBytes(String(name), 255)
            }
            if isMaskedBanner(first) {
                record.findings.append(Finding(code: .bannerMasked, frame: reply.frame,
                    message: "the greeting's text is masked (\(first.prefix(40))): a filtering firewall with ESMTP inspection sits in front of the server"))
            }
            return
        }
        resynchronize(for: reply.code)
        greetingSeen = true
        guard let command = dequeue() else {
            // A reply with no command: the end-of-data reply after a gap in the content,
            // or a mid-session start.
            if clientMode == .body, sawGap {
                addToOpenMessage(bytes: body.bytes)
                updateOpenMessage { $0.truncated = true }
                body = BodyScanner()
                clientMode = .command
                finishMessage(openMessage, reply: reply.code, frame: reply.frame)
                openMessage = nil
            } else {
                note("reply-without-command")
            }
            return
        }
        switch command.kind {
        case .ehlo:
            var keywords: [String] = []
            var masked: [String] = []
            var starttls = false
            if reply.code / 100 == 2 {
                if record.serverName == nil, let first = reply.lines.first, case let name = firstWord(first), !name.isEmpty {
                    record.serverName = prefixBytes(String(name), 255)
                }
                keywords.reserveCapacity(min(reply.lines.count, Self.maxKeywords + 1))
                for text in reply.lines.dropFirst().prefix(Self.maxKeywords) {
                    let keyword = ehloKeyword(text)
                    keywords.append(keyword.length > 100 ? prefixBytes(text, 100) : text)
                    if keyword.starttls { starttls = true }
                    if keyword.masked { masked.append(String(firstWord(text))) }
                }
                record.greeting = "EHLO"
            } else if reply.code >= 500 {
                ehloRejected = true
            }
            // Only EHLO replies seen before TLS matter; after an accepted STARTTLS a server
            // must not offer it again.
            if record.tls?.started != true && !starttlsAccepted, starttls { record.starttls.offered = true }
            if record.ehlo.count < Self.maxEHLOListed {
                keptTextBytes += keywords.reduce(0) { $0 + $1.utf8.count } + masked.reduce(0) { $0 + $1.utf8.count }
                record.ehlo.append(EHLOReply(frame: reply.frame, code: reply.code, keywords: keywords,
                                             starttls: starttls, maskedKeywords: masked, complete: !reply.damaged))
            } else {
                // A client repeating EHLO without end: counted, not kept.
                record.ehloNotListed += 1
                let afterTLS = record.starttls.reply == 220 && record.starttls.frame.map { reply.frame > $0 } == true
                if !starttls && !reply.damaged && !afterTLS { record.ehloNotListedWithoutSTARTTLS += 1 }
                note("ehlo-replies-not-listed")
            }
        case .helo:
            if reply.code / 100 == 2 && record.greeting != "EHLO" { record.greeting = "HELO" }
        case .starttls:
            record.starttls.reply = reply.code
            record.starttls.frame = reply.frame
            if reply.code == 220 {
                starttlsAccepted = true
                clearPending()
                serverMode = .preTLS
                serverLines.reset()
                let wasHolding = clientMode == .holding
                clientMode = .preTLS
                if wasHolding { replayHeld(meta) }
            } else if clientMode == .holding {
                clientMode = .command
                replayHeld(meta)
            }
        case .auth, .authResponse:
            if reply.code == 334 {
                clientMode = .authResponse
            } else if record.auth != nil {
                record.auth!.reply = reply.code
            }
        case .mail:
            if reply.code / 100 == 2 { recipients = 0 }
        case .rcpt:
            if reply.code / 100 == 2 { recipients += 1 }
        case .data:
            if reply.code == 354 {
                if clientMode == .holding || clientMode == .command {
                    startMessage(.data, frame: command.frame)
                    body = BodyScanner()
                    let wasHolding = clientMode == .holding
                    clientMode = .body
                    if wasHolding { replayHeld(meta) }
                }
            } else if clientMode == .holding {
                clientMode = .command
                replayHeld(meta)
            }
        case .dataEnd:
            finishMessage(command.message, reply: reply.code, frame: reply.frame)
        case .bdat(let last):
            if last || reply.code >= 400 {
                finishMessage(command.message, reply: reply.code, frame: reply.frame)
            }
        case .rset:
            recipients = 0
            if clientMode != .body, clientMode != .bdat {
                openMessage = nil  // a BDAT transaction abandoned without LAST
            }
        case .bdatInvalid, .quit, .other:
            break
        }
    }

    /// Some replies fit only one command (334 only AUTH, 354 only DATA, 235 only AUTH). When
    /// the head of the queue cannot take such a reply but a later command can, the commands
    /// before it lost their replies (a gap, or a reply hidden in a broken line): drop them.
    mutating func resynchronize(for code: Int) {
        guard pendingHead < pending.count else { return }
        let fits: (CommandKind) -> Bool
        switch code {
        case 334, 235: fits = { $0 == .auth || $0 == .authResponse }
        case 354: fits = { $0 == .data }
        default: return
        }
        if fits(pending[pendingHead].kind) { return }
        guard let match = pending[pendingHead...].firstIndex(where: { fits($0.kind) }) else { return }
        note("reply-resync")
        pendingHead = match
    }

    /// After a gap, whether the bytes at `p` look like the start of a line (a reply code or a
    /// command verb), so the line framer need not skip to the next line end.
    static func plausibleLineStart(_ bytes: UnsafeRawBufferPointer, at p: Int, server: Bool) -> Bool {
        guard bytes.count - p >= 4 else { return false }
        if server {
            return (0x32...0x35).contains(bytes[p]) && (0x30...0x39).contains(bytes[p + 1])
                && (0x30...0x39).contains(bytes[p + 2]) && (bytes[p + 3] == 0x20 || bytes[p + 3] == 0x2d)
        }
        var i = p
        while i < bytes.count && i - p < 9 {
            let b = bytes[i] | 0x20
            if b < 0x61 || b > 0x7a { break }
            i += 1
        }
        guard i - p >= 4, i < bytes.count else { return false }
        return bytes[i] == 0x20 || bytes[i] == 0x0d || bytes[i] == 0x0a
    }

    // MARK: - After a 220 to STARTTLS

    /// Client bytes after the 220: a TLS record starts the handshake; plaintext lines before
    /// it were injected after STARTTLS; plaintext with no TLS at all means TLS never started.
    mutating func clientPreTLS(_ bytes: UnsafeRawBufferPointer, from p: inout Int, _ meta: ChunkMeta) {
        while p < bytes.count {
            let atLineStart = preTLSClient.isEmpty || preTLSClient.last == 0x0a
            if atLineStart && bytes[p] == 0x16 {
                if !preTLSClient.isEmpty {
                    commandInjection = (preTLSClient.count, heldMetaFrame ?? meta.frame)
                    let lines = preTLSClientLines, count = preTLSClient.count
                    transcript(.clientToServer, meta, "<\(lines) plaintext line(s), \(count) bytes, sent after STARTTLS before TLS>")
                }
                preTLSClient = []
                clientMode = .tls
                return
            }
            if preTLSClient.isEmpty { heldMetaFrame = meta.frame; preTLSClientMeta = meta }
            let rest = UnsafeRawBufferPointer(rebasing: bytes[p...])
            var q = 0
            var lineFramer = LineFramer()
            let complete = lineFramer.consume(rest, from: &q)
            preTLSClient.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<q]))
            if complete { preTLSClientLines += 1 }
            p += q
            if preTLSClient.count > 16 * 1024 {
                fallBackToPlaintext(meta)
                return
            }
        }
    }

    var heldMetaFrame: UInt64?
    var preTLSClientMeta: ChunkMeta?

    mutating func serverPreTLS(_ bytes: UnsafeRawBufferPointer, from p: inout Int, _ meta: ChunkMeta) {
        let atLineStart = preTLSServer.isEmpty || preTLSServer.last == 0x0a
        if atLineStart && bytes[p] == 0x16 {
            if !preTLSServer.isEmpty {
                responseInjectionBytes = preTLSServer.count
            }
            preTLSServer = []
            serverMode = .tls
            return
        }
        if responseInjectionFrame == nil { responseInjectionFrame = meta.frame }
        let rest = UnsafeRawBufferPointer(rebasing: bytes[p...])
        var q = 0
        var lineFramer = LineFramer()
        let complete = lineFramer.consume(rest, from: &q)
        preTLSServer.append(contentsOf: UnsafeRawBufferPointer(rebasing: rest[0..<q]))
        p += q
        if record.tls?.started == true {
            // The client is already in TLS: plaintext from the server is injected.
            if preTLSServer.count > 16 * 1024 { serverMode = .opaque }
            return
        }
        if complete || preTLSServer.count > 16 * 1024 {
            // The server answers in plaintext and no TLS began: the session goes on in the clear.
            fallBackToPlaintext(meta)
            p = bytes.count  // the buffered bytes were replayed, including this chunk's part
            if q < rest.count {
                let remainder = UnsafeRawBufferPointer(rebasing: rest[q...])
                serverData(remainder, meta)
            }
        }
    }

    /// No TLS handshake followed the 220: read both directions as SMTP again.
    mutating func fallBackToPlaintext(_ meta: ChunkMeta) {
        guard clientMode == .preTLS || serverMode == .preTLS else { return }
        transcript(.clientToServer, meta, "<no TLS handshake after 220 to STARTTLS: the session went on in plaintext>")
        record.tls = record.tls ?? TLSFacts()
        record.tls!.problem = "no TLS handshake after 220"
        clientMode = .command
        serverMode = .replies
        let c = preTLSClient, s = preTLSServer
        preTLSClient = []
        preTLSServer = []
        let clientMeta = preTLSClientMeta ?? meta
        preTLSClientMeta = nil
        c.withUnsafeBytes { clientData($0, clientMeta) }
        s.withUnsafeBytes { serverData($0, meta) }
    }

    // MARK: - TLS

    mutating func feedTLS(_ bytes: UnsafeRawBufferPointer, fromServer: Bool, _ meta: ChunkMeta) {
        if record.tls == nil { record.tls = TLSFacts() }
        var events: [TLSDirectionReader.Event] = []
        if fromServer {
            tlsServer.feed(bytes) { events.append($0) }
            switch tlsServer.state {
            case .reading: break
            case .opaque: serverMode = .opaque  // encrypted from here: count only
            case .notTLS(let why):
                if record.tls!.problem == nil { record.tls!.problem = "server: \(why)" }
                serverMode = .opaque
            }
        } else {
            tlsClient.feed(bytes) { events.append($0) }
            switch tlsClient.state {
            case .reading: break
            case .opaque: clientMode = .opaque
            case .notTLS(let why):
                if record.tls!.problem == nil { record.tls!.problem = "client: \(why)" }
                clientMode = .opaque
            }
            if record.tls!.frame == nil && record.tls!.problem == nil { record.tls!.frame = meta.frame }
        }
        for event in events {
            switch event {
            case .clientHelloStarted:
                if !record.tls!.started {
                    record.tls!.started = true
                    record.tls!.frame = meta.frame
                }
            case .clientHello(let hello):
                if record.tls!.clientHello == nil {
                    record.tls!.started = true
                    if record.tls!.frame == nil { record.tls!.frame = meta.frame }
                    record.tls!.clientHello = hello
                    transcript(.clientToServer, meta, "<TLS ClientHello: encryption starts>")
                }
            case .serverHello(let hello):
                if record.tls!.serverHello == nil || record.tls!.serverHello!.helloRetryRequest {
                    record.tls!.serverHello = hello
                    transcript(.serverToClient, meta, "<TLS ServerHello: \(TLSNames.version(hello.version)), \(TLSNames.cipherSuite(hello.cipherSuite))>")
                }
            case .alert(let level, let description):
                if record.tls!.alert == nil {
                    record.tls!.alert = TLSAlert(level: level, description: description, fromServer: fromServer, frame: meta.frame)
                }
            case .certificate(let facts, let error):
                if fromServer && record.tls!.certificate == nil {
                    record.tls!.certificate = facts
                    record.tls!.certificateProblem = error
                }
            case .encrypted:
                break
            }
        }
    }

    // MARK: - Gaps

    mutating func clientGap(lost: UInt64, _ meta: ChunkMeta) {
        transcript(.clientToServer, meta, "<gap: \(lost) bytes missing from the capture>")
        switch clientMode {
        case .command, .authResponse:
            // A line cut by the gap still counts when its verb is whole (a snap length that
            // keeps only the start of each segment): it is taken as a truncated line.
            let partial = clientLines.line
            let wire = clientLines.length
            clientLines.resync()
            if clientMode == .command, let space = partial.firstIndex(of: 0x20), space >= 4 {
                note("line-cut-by-gap")
                clientLine(partial, wireLength: wire, meta)
            }
        case .holding:
            break
        case .body:
            body.bytes &+= lost
            body.state = .middle
            updateOpenMessage { $0.truncated = true }
        case .bdat:
            let inChunk = min(lost, bdatRemaining)
            bdatRemaining -= inChunk
            addToOpenMessage(bytes: inChunk)
            updateOpenMessage { $0.truncated = true }
            if bdatRemaining == 0 {
                endOfChunk(meta)
                if lost > inChunk { clientLines.resync() }
            }
        case .preTLS:
            fallBackToPlaintext(meta)
            clientLines.resync()
        case .tls:
            if tlsClient.state == .reading { clientMode = .opaque }
        case .opaque:
            break
        }
    }

    mutating func serverGap(_ meta: ChunkMeta) {
        transcript(.serverToClient, meta, "<gap: bytes missing from the capture>")
        switch serverMode {
        case .replies:
            // Keep the queue and any reply in progress: a lost piece of a multi-line reply
            // leaves the rest of it usable; replies that vanished whole are skipped by
            // `resynchronize` when a reply that fits only a later command arrives. A reply
            // line cut by the gap still gives its code.
            let partial = serverLines.line
            let wire = serverLines.length
            serverLines.resync()
            reply?.damaged = true
            if partial.count >= 4, let (code, _) = parseReplyLine(partial) {
                note("line-cut-by-gap")
                if reply == nil || reply!.code != code {
                    if var unfinished = reply {
                        unfinished.damaged = true
                        completeReply(unfinished, meta)
                    }
                    reply = ReplyInProgress(code: code, frame: meta.frame)
                }
                reply!.damaged = true
                // A cut final line ends the reply; a cut continuation leaves it open.
                partial.withUnsafeBytes { serverLine($0, wireLength: wire, meta) }
            }
        case .preTLS:
            serverMode = .opaque
        case .tls:
            if tlsServer.state == .reading { serverMode = .opaque }
        case .opaque:
            break
        }
    }

    // MARK: - Helpers

    mutating func note(_ anomaly: String) {
        record.anomalies[anomaly, default: 0] += 1
    }

    mutating func transcript(_ direction: Direction, _ meta: ChunkMeta, _ text: @autoclosure () -> String) {
        guard record.transcript != nil else { return }
        if record.transcript!.count >= options.maxTranscriptLines {
            record.transcriptTruncated = true
            return
        }
        record.transcript!.append(TranscriptLine(direction: direction, frame: meta.frame, text: text()))
    }
}
