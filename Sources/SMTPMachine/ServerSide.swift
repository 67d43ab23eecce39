import SMTPCapCore
import TLSHandshake

/// The server direction: reply lines assembled into replies, and each reply paired with the
/// command it answers (the transitions keyed on (command, reply)).
extension SMTPSession {
    mutating func serverData(_ bytes: Span<UInt8>, _ meta: ChunkMeta) {
        var p = 0
        while p < bytes.count {
            switch server {
            case .replies:
                if serverLines.skipping && Self.plausibleReplyStart(bytes, at: p) { serverLines.skipping = false }
                if let whole = serverLines.wholeLine(bytes, from: &p) {
                    serverLine(bytes.extracting(whole.kept), wireLength: whole.length, meta)
                } else if serverLines.consume(bytes, from: &p) {
                    let length = serverLines.length
                    var line = serverLines.takeLine()
                    serverLine(line.span, wireLength: length, meta)
                    serverLines.giveBack(&line)
                }
            case .preTLS:
                serverPreTLS(bytes, from: &p, meta)
            case .tls:
                feedTLS(bytes.extracting(p...), fromServer: true, meta)
                p = bytes.count
            case .opaque, .modifying:
                p = bytes.count
            }
        }
    }

    mutating func serverLine(_ line: Span<UInt8>, wireLength: Int, _ meta: ChunkMeta) {
        noteLongLine(wireLength, command: false)
        guard let (code, more) = parseReplyLine(line) else {
            if !line.isEmpty { note(.notAReplyLine) }
            // A broken continuation: end the reply here, marked unfinished.
            if var done = reply {
                done.damaged = true
                reply = nil
                completeReply(done, meta)
            }
            return
        }
        if reply?.code != code {
            if var unfinished = reply {
                unfinished.damaged = true  // its final line never came
                completeReply(unfinished, meta)
            }
            reply = ReplyInProgress(code: code, frame: meta.frame)
        }
        // Text is kept only where it is used: the greeting, EHLO keywords, the transcript.
        let wanted = !milestones.contains(.greeted) || record.transcript != nil || pending.first?.kind == .ehlo
        // An endless reply costs no allocation per line past the kept ones.
        let listed = reply!.lines.count < Self.maxKeywords + 1
        if wanted && (listed || record.transcript != nil) {
            let text = line.count > 4 ? String(wireBytes: line.extracting(4...), limit: 200) : ""
            if listed {
                if reply!.lines.isEmpty { reply!.lines.reserveCapacity(16) }  // one allocation for a typical EHLO reply
                reply!.lines.append(text)
                replyTextBytes += text.utf8.count
            }
            let shown = options.recordAddresses ? text : withholdingAddresses(text)
            transcript(.serverToClient, meta, "\(code)\(more ? "-" : " ")\(shown)")
        }
        reply!.lineCount += 1
        if reply!.lineCount > 10_000 && reply!.lineCount % 10_000 == 1 { note(.replyOver10000Lines) }
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
        if !milestones.contains(.greeted) && (reply.code == 220 || pending.isEmpty || (record.handshakeSeen && refusal)) {
            milestones.insert(.greeted)
            greeting(reply)
            return
        }
        resynchronize(for: reply.code)
        milestones.insert(.greeted)
        guard let command = pending.removeFirst() else {
            replyWithoutCommand(reply)
            return
        }
        apply(Self.transition(command.kind, reply: reply.code), command: command, reply: reply, meta)
    }

    /// The transition a final reply to a pending command makes, keyed on (command, reply)
    /// alone, as in Zeek's analyzer. Pure: `TransitionTests` checks it as a table.
    static func transition(_ command: CommandKind, reply code: Int) -> ReplyTransition {
        switch command {
        case .ehlo: .ehloAnswered
        case .helo: code / 100 == 2 ? .heloAccepted : .none
        case .starttls: code == 220 ? .upgradeToTLS : .starttlsRefused
        case .auth, .authResponse: code == 334 ? .readAuthData : .authAnswered
        case .mail: code / 100 == 2 ? .transactionStarted : .none
        case .rcpt: code / 100 == 2 ? .recipientAccepted : .none
        case .data: code == 354 ? .readContent : .dataRefused
        case .dataEnd: .messageAnswered
        case .bdat(let last): last || code >= 400 ? .messageAnswered : .none
        case .rset: .transactionReset
        case .bdatInvalid, .quit, .other: .none
        }
    }

    /// Carries out a transition: the facts it records and the states it changes.
    mutating func apply(_ transition: ReplyTransition, command: PendingCommand, reply: ReplyInProgress, _ meta: ChunkMeta) {
        switch transition {
        case .none:
            break
        case .ehloAnswered:
            ehloReply(reply)
        case .heloAccepted:
            if record.greeting != "EHLO" { record.greeting = "HELO" }
        case .upgradeToTLS:
            record.starttls.reply = reply.code
            record.starttls.frame = reply.frame
            milestones.insert(.starttlsAccepted)
            pending.removeAll()
            server = .preTLS(PlaintextBeforeTLS())
            serverLines.reset()
            endHolding(.preTLS(PlaintextBeforeTLS()), meta)
        case .starttlsRefused:
            record.starttls.reply = reply.code
            record.starttls.frame = reply.frame
            if case .holding = client { endHolding(.commands, meta) }
        case .readAuthData:
            // The client's next line is a secret. Bytes it held behind a DATA or STARTTLS
            // pipelined after AUTH can no longer be placed (content, or more secrets): they
            // are dropped unread and the session is marked, never read as commands.
            if case .holding(let held) = client, !held.bytes.isEmpty { note(.heldBytesDropped) }
            client = .authData
        case .authAnswered:
            if record.auth != nil { record.auth!.reply = reply.code }
        case .transactionStarted:
            recipients = 0
        case .recipientAccepted:
            recipients += 1
        case .readContent:
            switch client {
            case .holding, .commands:
                startMessage(.data, frame: command.frame)
                endHolding(.content(BodyScanner()), meta)
            case .authData, .content, .chunk, .preTLS, .tls, .opaque, .modifying:
                break
            }
        case .dataRefused:
            if case .holding = client { endHolding(.commands, meta) }
        case .messageAnswered:
            finishMessage(command.message, reply: reply.code, frame: reply.frame)
        case .transactionReset:
            recipients = 0
            switch client {
            case .content, .chunk: break
            default: openMessage = nil  // a BDAT transaction abandoned without LAST
            }
        }
    }

    /// The server's first reply.
    mutating func greeting(_ reply: ReplyInProgress) {
        record.bannerCode = reply.code
        record.bannerFrame = reply.frame
        let first = reply.lines.first ?? ""
        record.banner = first
        if record.serverName == nil, case let name = firstWord(first), !name.isEmpty, !isMaskedBanner(first) {
            record.serverName = prefixBytes(String(name), 255)
        }
    }

    /// A reply with no command: the end-of-data reply after a gap in the content, or a
    /// mid-session start.
    mutating func replyWithoutCommand(_ reply: ReplyInProgress) {
        guard case .content(let scanner) = client, milestones.contains(.gapSeen) else {
            note(.replyWithoutCommand)
            return
        }
        addToOpenMessage(bytes: scanner.bytes)
        updateOpenMessage { $0.truncated = true }
        client = .commands
        finishMessage(openMessage, reply: reply.code, frame: reply.frame)
        openMessage = nil
    }

    mutating func ehloReply(_ reply: ReplyInProgress) {
        var keywords: [String] = []
        var masked: [String] = []
        var starttls = false
        var firstLine: String?
        if reply.code / 100 == 2 {
            if let first = reply.lines.first { firstLine = prefixBytes(first, 200) }
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
            milestones.insert(.ehloRejected)
        }
        // Only EHLO replies seen before TLS matter; after an accepted STARTTLS a server must
        // not offer it again.
        if !tlsStarted && !milestones.contains(.starttlsAccepted), starttls { record.starttls.offered = true }
        if record.ehlo.count < Self.maxEHLOListed {
            keptTextBytes += keywords.reduce(0) { $0 + $1.utf8.count } + masked.reduce(0) { $0 + $1.utf8.count }
                + (firstLine?.utf8.count ?? 0)
            record.ehlo.append(EHLOReply(frame: reply.frame, code: reply.code, keywords: keywords,
                                         starttls: starttls, maskedKeywords: masked, complete: !reply.damaged,
                                         firstLine: firstLine))
        } else {
            // A client repeating EHLO without end: counted, not kept.
            record.ehloNotListed += 1
            let afterTLS = record.starttls.reply == 220 && record.starttls.frame.map { reply.frame > $0 } == true
            if !starttls && !reply.damaged && !afterTLS { record.ehloNotListedWithoutSTARTTLS += 1 }
            note(.ehloRepliesNotListed)
        }
    }

    /// Some replies fit only one command (334 only AUTH, 354 only DATA, 235 only AUTH). When
    /// the head of the queue cannot take such a reply but a later command can, the commands
    /// before it lost their replies (a gap, or a reply hidden in a broken line): drop them.
    mutating func resynchronize(for code: Int) {
        let fits: (CommandKind) -> Bool
        switch code {
        case 334, 235: fits = { $0 == .auth || $0 == .authResponse }
        case 354: fits = { $0 == .data }
        default: return
        }
        if pending.dropUntil(fits) { note(.replyResync) }
    }

    // MARK: - Gaps

    mutating func serverGap(_ meta: ChunkMeta) {
        transcript(.serverToClient, meta, "<gap: bytes missing from the capture>")
        switch server {
        case .replies:
            // Keep the queue and any reply in progress: a lost piece of a multi-line reply
            // leaves the rest of it usable; replies that vanished whole are skipped by
            // `resynchronize` when a reply that fits only a later command arrives. A reply
            // line cut by the gap still gives its code.
            let partial = serverLines.line
            let wire = serverLines.length
            serverLines.resync()
            reply?.damaged = true
            if partial.count >= 4, let (code, _) = parseReplyLine(partial.span) {
                note(.lineCutByGap)
                if reply?.code != code {
                    if var unfinished = reply {
                        unfinished.damaged = true
                        completeReply(unfinished, meta)
                    }
                    reply = ReplyInProgress(code: code, frame: meta.frame)
                }
                reply!.damaged = true
                // A cut final line ends the reply; a cut continuation leaves it open.
                serverLine(partial.span, wireLength: wire, meta)
            }
        case .preTLS(let before):
            leavePreTLSUnread(before)
        case .tls:
            if tlsServer.state == .reading { server = .opaque }
        case .opaque, .modifying:
            break
        }
    }

    /// After a gap, whether the bytes at `p` look like the start of a reply line (a code and a
    /// space or dash), so the framer need not skip to a line end.
    static func plausibleReplyStart(_ bytes: Span<UInt8>, at p: Int) -> Bool {
        guard bytes.count - p >= 4 else { return false }
        return (0x32...0x35).contains(bytes[p]) && (0x30...0x39).contains(bytes[p + 1])
            && (0x30...0x39).contains(bytes[p + 2]) && (bytes[p + 3] == 0x20 || bytes[p + 3] == 0x2d)
    }
}
