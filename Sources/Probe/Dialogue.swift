import CProbeSupport
import Crypto

/// What the socket side of one probe saw: the dialogue as the client read it. The wire
/// evidence (masking, hops, the captured TLS handshake) comes from the capture instead.
public struct ProbeOutcome: Sendable {
    public var address: ProbeAddress
    /// The local port the connection came from (the capture filter's key).
    public var localPort: Int
    public var banner: String?
    /// The EHLO reply's lines (text after the code), before TLS.
    public var ehlo: [String] = []
    public var starttlsOffered = false
    public var starttlsReply: Int?
    public var tlsVersion: String?
    public var tlsCipher: String?
    /// SHA-256 of the server's leaf certificate (lowercase hex), as the TLS library saw it.
    public var certificateSHA256: String?
    /// The EHLO reply inside TLS.
    public var ehloInTLS: [String] = []
    /// What went wrong, in one line, and at which step.
    public var error: String?
    /// This host cannot reach the address's family at all (no route, no address of that
    /// family): a fact about here, not about the target.
    public var notTestableHere = false

    public init(address: ProbeAddress, localPort: Int) {
        self.address = address
        self.localPort = localPort
    }
}

/// One SMTP client connection that never sends mail: banner, EHLO, STARTTLS when offered, TLS,
/// EHLO again, QUIT.
public struct ProbeDialogue {
    /// The EHLO name; nil: this host's fully qualified name, or when it has none (no dot),
    /// the connection's own address literal (RFC 5321 §4.1.4).
    public var ehloName: String?
    public var port: Int
    public var timeoutMilliseconds: Int

    public init(ehloName: String?, port: Int, timeoutMilliseconds: Int) {
        self.ehloName = ehloName
        self.port = port
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// A socket bound to an ephemeral port, so the capture can be set up before connecting.
    public static func socket(family: Int) -> (fd: Int32, localPort: Int)? {
        var port: Int32 = 0
        var err = [CChar](repeating: 0, count: 256)
        let fd = smtpcap_socket(Int32(family), &port, &err, Int32(err.count))
        return fd < 0 ? nil : (fd, Int(port))
    }

    /// Closes a socket from `socket(family:)` that will not be used.
    public static func close(_ fd: Int32) { smtpcap_close(fd) }

    /// Runs the dialogue on `fd` (from `socket(family:)`) and closes it.
    public func run(_ address: ProbeAddress, fd: Int32, localPort: Int) -> ProbeOutcome {
        var o = ProbeOutcome(address: address, localPort: localPort)
        var connection = Connection(fd: fd, timeout: Int32(timeoutMilliseconds))
        defer { connection.close() }
        if let e = connection.connect(address, port: port) {
            o.error = e
            o.notTestableHere = e.contains("Network is unreachable") || e.contains("Cannot assign requested address")
                || e.contains("Address family not supported")
            return o
        }
        // A server may delay its greeting (RFC 5321 §4.5.3.2 allows five minutes): twice the
        // timeout for it.
        guard let banner = connection.reply(step: "the banner", within: 2 * connection.timeout) else { return failed(o, connection) }
        o.banner = banner.lines.first.map { "\(banner.code) \($0)" }
        guard banner.code == 220 else {
            o.error = "the server greeted with \(banner.code), not 220"
            connection.quit()
            return o
        }
        let name = ehloName ?? Self.defaultName(connection)
        guard connection.send("EHLO \(name)\r\n"), let ehlo = connection.reply(step: "the EHLO reply") else { return failed(o, connection) }
        guard ehlo.code / 100 == 2 else {
            o.error = "EHLO was answered with \(ehlo.code)"
            connection.quit()
            return o
        }
        o.ehlo = ehlo.lines
        o.starttlsOffered = ehlo.lines.dropFirst().contains { $0.uppercased() == "STARTTLS" || $0.uppercased().hasPrefix("STARTTLS ") }
        guard o.starttlsOffered else {
            connection.quit()
            return o
        }
        guard connection.send("STARTTLS\r\n"), let ready = connection.reply(step: "the reply to STARTTLS") else { return failed(o, connection) }
        o.starttlsReply = ready.code
        guard ready.code == 220 else {
            o.error = "STARTTLS was answered \(ready.code) \(ready.lines.first ?? "")"
            connection.quit()
            return o
        }
        // Bytes after the 220 and before TLS are plaintext the TLS layer would take for its
        // own (STARTTLS response injection, CVE-2011-0411's server side).
        guard connection.buffer.isEmpty else {
            o.error = "the server sent \(connection.buffer.count) bytes in plaintext after its 220 to STARTTLS, before TLS (response injection): not continued"
            return o
        }
        if let e = connection.startTLS(serverName: address.mx) {
            o.error = e
            return o
        }
        (o.tlsVersion, o.tlsCipher, o.certificateSHA256) = connection.tlsFacts()
        if connection.send("EHLO \(name)\r\n"), let again = connection.reply(step: "the EHLO reply inside TLS") {
            o.ehloInTLS = again.lines
            connection.quit()
        } else {
            o.error = connection.lastError
        }
        return o
    }

    static func defaultName(_ c: Connection) -> String {
        let fqdn = ProbeResolver.localName()
        if fqdn.contains(".") && fqdn != "localhost" { return fqdn }
        var literal = [CChar](repeating: 0, count: 64)
        return smtpcap_local_literal(c.fd, &literal, Int32(literal.count)) == 0 ? ProbeResolver.cString(literal) : fqdn
    }

    func failed(_ o: ProbeOutcome, _ c: Connection) -> ProbeOutcome {
        var o = o
        o.error = c.lastError ?? "the connection ended"
        return o
    }
}

/// A socket, maybe with TLS on it, that reads SMTP replies.
struct Connection {
    let fd: Int32
    let timeout: Int32
    var tls: OpaquePointer?
    var buffer: [UInt8] = []
    var lastError: String?

    init(fd: Int32, timeout: Int32) {
        self.fd = fd
        self.timeout = timeout
    }

    mutating func connect(_ a: ProbeAddress, port: Int) -> String? {
        var err = [CChar](repeating: 0, count: 256)
        if smtpcap_connect(fd, Int32(a.family), a.address, Int32(port), timeout, &err, Int32(err.count)) != 0 {
            return ProbeResolver.cString(err)
        }
        return nil
    }

    mutating func send(_ text: String) -> Bool {
        var err = [CChar](repeating: 0, count: 256)
        let bytes = Array(text.utf8)
        if smtpcap_send(fd, tls, bytes, Int32(bytes.count), timeout, &err, Int32(err.count)) != 0 {
            lastError = ProbeResolver.cString(err)
            return false
        }
        return true
    }

    /// One whole reply (multi-line included): its code and the text of each line, within
    /// `within` milliseconds (default: the timeout) for the whole reply. Lines are kept cut at
    /// 512 bytes, 64 of them; a reply of more than 1,000 lines or 64 KiB is an error. Nil on
    /// a timeout, an error or the end.
    mutating func reply(step: String, within: Int32? = nil) -> (code: Int, lines: [String])? {
        let clock = ContinuousClock()
        let deadline = clock.now + .milliseconds(Int(within ?? timeout))
        var lines: [String] = []
        var code = 0, count = 0, bytes = 0
        while true {
            let left = deadline - clock.now
            let ms = Int32(clamping: left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)
            guard ms > 0, let line = readLine(step: step, timeout: ms) else {
                if lastError == nil || ms <= 0 { lastError = "timed out waiting for \(step)" }
                return nil
            }
            let text = Array(line.utf8)
            count += 1
            bytes += text.count
            guard count <= 1_000, bytes <= 64 * 1024 else {
                lastError = "\(step) went on past 1,000 lines or 64 KiB"
                return nil
            }
            guard text.count >= 3, text.prefix(3).allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let c = Int(String(decoding: text.prefix(3), as: UTF8.self)) else {
                lastError = "\(step) was not an SMTP reply"
                return nil
            }
            code = c
            if lines.count < 64 { lines.append(text.count > 4 ? String(decoding: text.dropFirst(4).prefix(512), as: UTF8.self) : "") }
            if text.count < 4 || text[3] != UInt8(ascii: "-") { return (code, lines) }
        }
    }

    mutating func readLine(step: String, timeout: Int32) -> String? {
        lastError = nil
        while true {
            if let end = buffer.firstIndex(of: 0x0a) {
                var line = Array(buffer[..<end])
                buffer.removeSubrange(...end)
                if line.last == 0x0d { line.removeLast() }
                return String(decoding: line, as: UTF8.self)
            }
            guard buffer.count < 64 * 1024 else {
                lastError = "\(step): a line longer than 64 KiB"
                return nil
            }
            var chunk = [UInt8](repeating: 0, count: 4096)
            var err = [CChar](repeating: 0, count: 256)
            let n = smtpcap_recv(fd, tls, &chunk, Int32(chunk.count), timeout, &err, Int32(err.count))
            switch n {
            case -2:
                lastError = "timed out waiting for \(step)"
                return nil
            case 0:
                lastError = "the server closed the connection before \(step)"
                return nil
            case ..<0:
                lastError = "\(ProbeResolver.cString(err)) (waiting for \(step))"
                return nil
            default:
                buffer += chunk.prefix(Int(n))
            }
        }
    }

    mutating func startTLS(serverName: String?) -> String? {
        var err = [CChar](repeating: 0, count: 256)
        guard let t = smtpcap_tls_start(fd, serverName, timeout, &err, Int32(err.count)) else {
            return ProbeResolver.cString(err)
        }
        tls = t
        return nil
    }

    func tlsFacts() -> (String?, String?, String?) {
        guard let tls else { return (nil, nil, nil) }
        var version = [CChar](repeating: 0, count: 64), cipher = [CChar](repeating: 0, count: 128)
        smtpcap_tls_info(tls, &version, 64, &cipher, 128)
        var der = [UInt8](repeating: 0, count: 65_536)
        let n = smtpcap_tls_peer_der(tls, &der, Int32(der.count))
        var sha: String?
        if n > 0 && Int(n) <= der.count {
            let digits = Array("0123456789abcdef".utf8)
            var hex: [UInt8] = []
            for b in SHA256.hash(data: der.prefix(Int(n))) {
                hex.append(digits[Int(b >> 4)])
                hex.append(digits[Int(b & 0xf)])
            }
            sha = String(decoding: hex, as: UTF8.self)
        }
        // OpenSSL says TLSv1.3; the analyzer says TLS1.3.
        let name = ProbeResolver.cString(version).replacingTLSv()
        return (name, ProbeResolver.cString(cipher), sha)
    }

    /// QUIT, its reply, then what the server still sends until it closes (TLS's close_notify
    /// included), for at most a second: closing with bytes unread would end in a reset.
    mutating func quit() {
        guard send("QUIT\r\n"), reply(step: "the reply to QUIT") != nil else { return }
        var chunk = [UInt8](repeating: 0, count: 4096)
        var err = [CChar](repeating: 0, count: 256)
        var reads = 0
        while reads < 16 && smtpcap_recv(fd, tls, &chunk, Int32(chunk.count), 1000, &err, Int32(err.count)) > 0 { reads += 1 }
    }

    mutating func close() {
        if let tls { smtpcap_tls_free(tls) }
        tls = nil
        smtpcap_close(fd)
    }
}


extension String {
    func replacingTLSv() -> String {
        hasPrefix("TLSv") ? "TLS" + dropFirst(4) : self
    }
}
