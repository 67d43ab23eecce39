import SMTPCapCore
import TLSHandshake

/// Server plaintext after its 220 to STARTTLS: where it began (kept from the first), the bytes
/// seen before its first TLS record, and the bytes left unread when the direction became
/// opaque (read as SMTP again if the client falls back to plaintext).
struct ServerPlaintextAfter220 {
    var firstFrame: UInt64?
    var beforeTLS = 0
    var unread: [UInt8] = []
}

/// The bytes between a 220 to STARTTLS and TLS, and the TLS records after it.
extension SMTPSession {
    /// Client bytes after the 220: a TLS record starts the handshake; plaintext lines before
    /// it were injected after STARTTLS; plaintext with no TLS at all means TLS never started.
    mutating func clientPreTLS(_ bytes: Span<UInt8>, from p: inout Int, _ meta: ChunkMeta) {
        while p < bytes.count {
            guard case .preTLS(var before) = client else { return }
            if before.atLineStart && bytes[p] == 0x16 {
                if !before.bytes.isEmpty {
                    record.evidence.commandInjection = InjectedPlaintext(bytes: before.bytes.count,
                                                                         frame: before.firstMeta?.frame ?? meta.frame)
                    transcript(.clientToServer, meta,
                               "<\(before.lines) plaintext line(s), \(before.bytes.count) bytes, sent after STARTTLS before TLS>")
                }
                client = .tls
                return
            }
            client = .modifying
            if before.bytes.isEmpty { before.firstMeta = meta }
            let lineEnd = ByteScan.firstIndex(of: 0x0a, in: bytes, from: p)
            let q = lineEnd.map { $0 + 1 } ?? bytes.count
            before.bytes.append(span: bytes.extracting(p..<q))
            if lineEnd != nil { before.lines += 1 }
            p = q
            let overflow = before.bytes.count > PlaintextBeforeTLS.limit
            client = .preTLS(before)
            if overflow {
                fallBackToPlaintext(meta)
                return
            }
        }
    }

    mutating func serverPreTLS(_ bytes: Span<UInt8>, from p: inout Int, _ meta: ChunkMeta) {
        guard case .preTLS(var before) = server else { return }
        if before.atLineStart && bytes[p] == 0x16 {
            if !before.bytes.isEmpty { serverAfter220.beforeTLS = before.bytes.count }
            server = .tls
            return
        }
        if serverAfter220.firstFrame == nil { serverAfter220.firstFrame = meta.frame }
        server = .modifying
        let lineEnd = ByteScan.firstIndex(of: 0x0a, in: bytes, from: p)
        let q = lineEnd.map { $0 + 1 } ?? bytes.count
        before.bytes.append(span: bytes.extracting(p..<q))
        p = q
        let overflow = before.bytes.count > PlaintextBeforeTLS.limit
        server = .preTLS(before)
        if tlsStarted {
            // The client is already in TLS: plaintext from the server is injected.
            if overflow { leavePreTLSUnread(before) }
            return
        }
        if lineEnd != nil || overflow {
            // The server answers in plaintext and no TLS began: the session goes on in the clear.
            // The bytes buffered so far are replayed, this chunk's part included; the caller's
            // loop reads the rest of the chunk as replies.
            fallBackToPlaintext(meta)
        }
    }

    /// The server direction can no longer be read before TLS (a gap, or too much plaintext
    /// while the client is in TLS): what it held counts as unread plaintext.
    mutating func leavePreTLSUnread(_ before: PlaintextBeforeTLS) {
        serverAfter220.unread = before.bytes
        server = .opaque
    }

    /// No TLS handshake followed the 220: read both directions as SMTP again.
    mutating func fallBackToPlaintext(_ meta: ChunkMeta) {
        var clientBefore = PlaintextBeforeTLS(), serverBefore = PlaintextBeforeTLS()
        var either = false
        if case .preTLS(let b) = client { clientBefore = b; either = true }
        if case .preTLS(let b) = server { serverBefore = b; either = true }
        guard either else { return }
        // Server bytes left unread by a gap are read again too.
        if serverBefore.bytes.isEmpty { swap(&serverBefore.bytes, &serverAfter220.unread) }
        serverAfter220.unread = []
        transcript(.clientToServer, meta, "<no TLS handshake after 220 to STARTTLS: the session went on in plaintext>")
        updateTLS { $0.problem = "no TLS handshake after 220" }
        client = .commands
        server = .replies
        clientData(clientBefore.bytes.span, clientBefore.firstMeta ?? meta)
        serverData(serverBefore.bytes.span, meta)
    }

    /// The server's plaintext after its 220 to STARTTLS, as evidence, once the session ends.
    mutating func recordResponseInjection() {
        let unread = serverAfter220.unread.count
        if serverAfter220.beforeTLS > 0 || (tlsStarted && unread > 0) {
            record.evidence.responseInjection = InjectedPlaintext(bytes: max(serverAfter220.beforeTLS, unread),
                                                                  frame: serverAfter220.firstFrame)
        }
    }

    // MARK: - TLS

    mutating func feedTLS(_ bytes: Span<UInt8>, fromServer: Bool, _ meta: ChunkMeta) {
        if record.tls == nil { record.tls = TLSFacts() }
        var events: [TLSDirectionReader.Event] = []
        if fromServer {
            tlsServer.feed(bytes) { events.append($0) }
            switch tlsServer.state {
            case .reading: break
            case .opaque: server = .opaque  // encrypted from here: count only
            case .notTLS(let why):
                updateTLS { if $0.problem == nil { $0.problem = "server: \(why)" } }
                server = .opaque
            }
        } else {
            tlsClient.feed(bytes) { events.append($0) }
            switch tlsClient.state {
            case .reading: break
            case .opaque: client = .opaque
            case .notTLS(let why):
                updateTLS { if $0.problem == nil { $0.problem = "client: \(why)" } }
                client = .opaque
            }
            updateTLS { if $0.frame == nil && $0.problem == nil { $0.frame = meta.frame } }
        }
        for event in events {
            tlsEvent(event, fromServer: fromServer, meta)
        }
    }

    mutating func tlsEvent(_ event: TLSDirectionReader.Event, fromServer: Bool, _ meta: ChunkMeta) {
        switch event {
        case .clientHelloStarted:
            updateTLS { tls in
                if !tls.started {
                    tls.started = true
                    tls.frame = meta.frame
                }
            }
        case .clientHello(let hello):
            var first = false
            updateTLS { tls in
                guard tls.clientHello == nil else { return }
                first = true
                tls.started = true
                if tls.frame == nil { tls.frame = meta.frame }
                tls.clientHello = hello
            }
            if first { transcript(.clientToServer, meta, "<TLS ClientHello: encryption starts>") }
        case .serverHello(let hello):
            var taken = false
            updateTLS { tls in
                // A HelloRetryRequest gives way to the ServerHello that follows it.
                guard tls.serverHello.map({ $0.helloRetryRequest }) ?? true else { return }
                taken = true
                tls.serverHello = hello
            }
            if taken {
                transcript(.serverToClient, meta, "<TLS ServerHello: \(TLSNames.version(hello.version)), \(TLSNames.cipherSuite(hello.cipherSuite))>")
            }
        case .alert(let level, let description):
            updateTLS { tls in
                if tls.alert == nil {
                    tls.alert = TLSAlert(level: level, description: description, fromServer: fromServer, frame: meta.frame)
                }
            }
        case .certificate(let facts, let error):
            guard fromServer else { return }
            updateTLS { tls in
                if tls.certificate == nil {
                    tls.certificate = facts
                    tls.certificateProblem = error
                }
            }
        case .encrypted:
            break
        }
    }
}
