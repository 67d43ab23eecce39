import SMTPCapCore
import TLSHandshake

/// The client direction: command lines, AUTH payloads, held pipelined bytes, DATA content and
/// BDAT chunks.
extension SMTPSession {
    mutating func clientData(_ bytes: Span<UInt8>, _ meta: ChunkMeta) {
        var p = 0
        while p < bytes.count {
            switch client {
            case .commands, .authData:
                if clientLines.skipping && Self.plausibleCommandStart(bytes, at: p) { clientLines.skipping = false }
                if clientLines.consume(bytes, from: &p) {
                    let length = clientLines.length
                    var line = clientLines.takeLine()
                    clientLine(line, wireLength: length, meta)
                    clientLines.giveBack(&line)
                }
            case .holding(var held):
                client = .modifying
                if held.meta == nil { held.meta = meta }
                let n = min(bytes.count - p, HeldBytes.limit - held.bytes.count)
                held.bytes.append(span: bytes.extracting(p..<(p + n)))
                p += n
                client = .holding(held)
                if held.bytes.count >= HeldBytes.limit {
                    // A client that sends this much before the reply is sending content.
                    note(.heldBytesLimit)
                    releaseHeld(assumeSuccess: true, meta)
                }
            case .content(var scanner):
                let ended = scanner.scan(bytes, from: &p)
                client = .content(scanner)
                if ended { endOfData(meta) }
            case .chunk(var chunk):
                let n = Int(min(chunk.remaining, UInt64(bytes.count - p)))
                chunk.remaining -= UInt64(n)
                p += n
                client = .chunk(chunk)
                addToOpenMessage(bytes: UInt64(n))
                if chunk.remaining == 0 { endOfChunk(last: chunk.last) }
            case .preTLS:
                clientPreTLS(bytes, from: &p, meta)
            case .tls:
                feedTLS(bytes.extracting(p...), fromServer: false, meta)
                p = bytes.count
            case .opaque, .modifying:
                p = bytes.count
            }
        }
    }

    mutating func clientLine(_ line: [UInt8], wireLength: Int, _ meta: ChunkMeta) {
        noteLongLine(wireLength, command: true)
        if case .authData = client {
            // A credential: counted, never kept.
            transcript(.clientToServer, meta, "<AUTH data: \(wireLength) bytes>")
            client = .commands
            enqueue(.authResponse, meta)
            return
        }
        if line.isEmpty { return }
        let command = ParsedCommand(line)
        record.commands += 1
        if !command.isKnownVerb { note(.unknownCommand) }
        switch command.kind {
        case .ehlo, .helo:
            transcript(.clientToServer, meta, "\(command.verb) \(wireText(command.argument, limit: 100))")
            if record.heloName == nil { record.heloName = wireText(command.argument, limit: 100) }
            if command.kind == .helo, milestones.contains(.ehloRejected), record.evidence.heloAfterRejectedEHLOFrame == nil {
                record.evidence.heloAfterRejectedEHLOFrame = meta.frame
            }
            enqueue(command.kind, meta)
        case .starttls:
            transcript(.clientToServer, meta, "STARTTLS")
            record.starttls.requested = true
            enqueue(.starttls, meta)
            holdUntilReply()
        case .auth:
            // Only the mechanism is kept; an initial response is a secret.
            let argument = command.argument
            let mechEnd = argument.firstIndex(of: 0x20) ?? argument.endIndex
            let mechanism = wireText(argument[argument.startIndex..<mechEnd], limit: 32).uppercased()
            let initial = argument.endIndex - mechEnd
            transcript(.clientToServer, meta, initial > 0
                       ? "AUTH \(mechanism) <initial response: \(initial - 1) bytes>" : "AUTH \(mechanism)")
            let inPlaintext = !tlsStarted
            if record.auth == nil || (inPlaintext && record.auth?.plaintext == false) {
                record.auth = AuthFacts(mechanism: mechanism, plaintext: inPlaintext, frame: meta.frame, reply: nil)
            }
            noteCommandAfterOffer(meta)
            enqueue(.auth, meta)
        case .mail:
            let keep = options.recordAddresses
            transcript(.clientToServer, meta, Self.envelopeLine(command, addresses: keep))
            envelope.mail(command.argument, keepAddress: keep)
            noteCommandAfterOffer(meta)
            enqueue(.mail, meta)
        case .rcpt:
            let keep = options.recordAddresses
            transcript(.clientToServer, meta, Self.envelopeLine(command, addresses: keep))
            let address = Envelope.address(in: command.argument)
            envelope.rcpt(address, keepAddress: keep)
            if options.recordRecipientDomains, let address, record.recipientDomains.count < Envelope.maxDomains,
               let domain = Envelope.domain(of: address),
               !record.recipientDomains.contains(domain) {
                record.recipientDomains.append(domain)
            }
            noteCommandAfterOffer(meta)
            enqueue(.rcpt, meta)
        case .data:
            transcript(.clientToServer, meta, "DATA")
            noteCommandAfterOffer(meta)
            enqueue(.data, meta)
            if !holdUntilReply() {
                // No server side in the capture: assume 354 and read content.
                startMessage(.data, frame: meta.frame)
                client = .content(BodyScanner())
            }
        case .bdat:
            noteCommandAfterOffer(meta)
            guard let (size, last) = parseBDAT(command.argument) else {
                transcript(.clientToServer, meta, "BDAT \(wireText(command.argument, limit: 40)) (invalid)")
                note(.bdatInvalid)
                enqueue(.bdatInvalid, meta)
                return
            }
            transcript(.clientToServer, meta, "BDAT \(size)\(last ? " LAST" : "") <content: \(size) bytes>")
            if openMessage == nil { startMessage(.bdat, frame: meta.frame) }
            updateOpenMessage { $0.chunks += 1 }
            enqueue(.bdat(last: last), meta, message: openMessage)
            if size > 0 {
                client = .chunk(BDATChunk(remaining: size, last: last))
            } else if last {
                openMessage = nil
            }
        case .rset:
            transcript(.clientToServer, meta, "RSET")
            envelope.reset()
            enqueue(.rset, meta)
        case .quit:
            transcript(.clientToServer, meta, "QUIT")
            enqueue(.quit, meta)
        case .authResponse, .dataEnd, .bdatInvalid:
            break  // never parsed from a line
        case .other:
            // An unknown line is shown by its size only: it may be an AUTH answer whose 334
            // the capture missed (one direction, a gap), and so a credential.
            let addresses = options.recordAddresses
            let shown = command.isKnownVerb
                ? "\(command.verb) \(addresses ? wireText(command.argument, limit: 100) : withholdingAddresses(wireText(command.argument, limit: 100)))"
                : "<unknown command: \(line.count) bytes>"
            transcript(.clientToServer, meta, shown)
            enqueue(.other, meta)
        }
    }

    /// A MAIL or RCPT line for the transcript: whole, or with the address withheld.
    static func envelopeLine(_ command: ParsedCommand, addresses: Bool) -> String {
        if addresses { return "\(command.verb) \(wireText(command.argument, limit: 200))" }
        return "\(command.verb) <address withheld: \(command.argument.count) bytes>"
    }

    /// After DATA or STARTTLS, later client bytes wait for the reply, when the server side is
    /// in the capture and still open. Says whether they will.
    @discardableResult
    mutating func holdUntilReply() -> Bool {
        guard serverBytesSeen > 0 && !milestones.contains(.serverClosed) else { return false }
        client = .holding(HeldBytes())
        return true
    }

    mutating func noteCommandAfterOffer(_ meta: ChunkMeta) {
        if record.starttls.offered && !record.starttls.requested && !tlsStarted
            && record.evidence.plaintextAfterOfferFrame == nil {
            record.evidence.plaintextAfterOfferFrame = meta.frame
        }
    }

    mutating func enqueue(_ kind: CommandKind, _ meta: ChunkMeta, message: Int? = nil) {
        if !pending.append(PendingCommand(kind: kind, frame: meta.frame, message: message)) {
            note(.pendingCommandsLimit)
        }
    }

    /// Leaves `holding` without the reply that decides it (the connection closed, the bound
    /// was reached, the capture ended): DATA is taken as accepted when `assumeSuccess`.
    mutating func releaseHeld(assumeSuccess: Bool, _ meta: ChunkMeta) {
        guard case .holding(let held) = client else { return }
        // Which command are we waiting for? The newest DATA or STARTTLS in the queue.
        let waitingFor = pending.last { $0 == .data || $0 == .starttls }
        if assumeSuccess, let waitingFor, waitingFor.kind == .data {
            startMessage(.data, frame: waitingFor.frame)
            client = .content(BodyScanner())
        } else {
            client = .commands
        }
        replay(held, meta)
    }

    /// Reads held bytes again in the state the reply chose.
    mutating func replay(_ held: HeldBytes, _ meta: ChunkMeta) {
        guard !held.bytes.isEmpty else { return }
        clientData(held.bytes.span, held.meta ?? meta)
    }

    /// The reply to DATA or STARTTLS arrived: leaves `holding` for `next` and reads what was
    /// held in it.
    mutating func endHolding(_ next: ClientState, _ meta: ChunkMeta) {
        guard case .holding(let held) = client else {
            client = next
            return
        }
        client = next
        replay(held, meta)
    }

    // MARK: - Messages

    mutating func startMessage(_ method: MessageMethod, frame: UInt64) {
        // DATA inside a BDAT transaction that never sent LAST: still one mail transaction.
        if openMessage != nil { return }
        var message = MessageFacts(method: method, frame: frame, bytes: 0, recipients: recipients, reply: nil)
        message.envelope = envelope.current
        message.rcptNotListed = envelope.toNotListed
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
        guard case .content(let scanner) = client else { return }
        buffers.invalidate()
        addToOpenMessage(bytes: scanner.bytes)
        transcript(.clientToServer, meta, "<message content: \(scanner.bytes) bytes>")
        transcript(.clientToServer, meta, ".")
        client = .commands
        enqueue(.dataEnd, meta, message: openMessage)
        openMessage = nil
    }

    mutating func endOfChunk(last: Bool) {
        buffers.invalidate()
        client = .commands
        if last { openMessage = nil }  // sent; the reply to BDAT LAST finishes it
    }

    /// The final reply to a message's content.
    mutating func finishMessage(_ index: Int?, reply: Int, frame: UInt64) {
        guard let index, index < record.messages.count else { return }
        record.messages[index].reply = reply
        record.messages[index].replyFrame = frame
    }

    // MARK: - Gaps

    mutating func clientGap(lost: UInt64, _ meta: ChunkMeta) {
        transcript(.clientToServer, meta, "<gap: \(lost) bytes missing from the capture>")
        switch client {
        case .commands, .authData:
            // A line cut by the gap still counts when its verb is whole (a snap length that
            // keeps only the start of each segment): it is taken as a truncated line.
            let partial = clientLines.line
            let wire = clientLines.length
            clientLines.resync()
            if case .commands = client, let space = partial.firstIndex(of: 0x20), space >= 4 {
                note(.lineCutByGap)
                clientLine(partial, wireLength: wire, meta)
            }
        case .holding, .opaque, .modifying:
            break
        case .content(var scanner):
            scanner.skip(lost)
            client = .content(scanner)
            updateOpenMessage { $0.truncated = true }
        case .chunk(var chunk):
            let inChunk = min(lost, chunk.remaining)
            chunk.remaining -= inChunk
            client = .chunk(chunk)
            addToOpenMessage(bytes: inChunk)
            updateOpenMessage { $0.truncated = true }
            if chunk.remaining == 0 {
                endOfChunk(last: chunk.last)
                if lost > inChunk { clientLines.resync() }
            }
        case .preTLS:
            fallBackToPlaintext(meta)
            clientLines.resync()
        case .tls:
            if tlsClient.state == .reading { client = .opaque }
        }
    }

    /// After a gap, whether the bytes at `p` look like the start of a command (a verb of four
    /// to eight letters and a space or line end), so the framer need not skip to a line end.
    static func plausibleCommandStart(_ bytes: Span<UInt8>, at p: Int) -> Bool {
        guard bytes.count - p >= 4 else { return false }
        var i = p
        while i < bytes.count && i - p < 9 {
            let b = bytes[i] | 0x20
            if b < 0x61 || b > 0x7a { break }
            i += 1
        }
        guard i - p >= 4, i < bytes.count else { return false }
        return bytes[i] == 0x20 || bytes[i] == 0x0d || bytes[i] == 0x0a
    }
}
