import SMTPCapCore
import TLSHandshake

/// One reply to an EHLO command.
public struct EHLOReply: Sendable, Hashable {
    public var frame: UInt64
    public var code: Int
    /// Extension lines as the server sent them (`SIZE 10240000`), capped in count and length.
    public var keywords: [String]
    public var starttls: Bool
    /// A keyword made only of X's and at most one trailing letter (`XXXXXXXA`): ESMTP
    /// inspection on a firewall masked an extension it does not allow.
    public var maskedKeywords: [String]
    /// False when a gap hit the reply or its final line was never seen: then a missing
    /// STARTTLS proves nothing, and no `starttls-missing` is reported for it.
    public var complete: Bool
    /// The reply's first line (`mx.example.org Hello [198.51.100.10]`), capped; nil when the
    /// reply was not a success.
    public var firstLine: String? = nil
}

public struct STARTTLSFacts: Sendable, Hashable {
    public var offered = false
    public var requested = false
    public var reply: Int?
    public var frame: UInt64?
    public init() {}
}

public struct TLSFacts: Sendable, Hashable {
    /// A TLS ClientHello was seen.
    public var started = false
    /// Frame of the ClientHello (or of the first TLS bytes).
    public var frame: UInt64?
    public var implicit = false
    public var clientHello: ClientHelloFacts?
    public var serverHello: ServerHelloFacts?
    public var alert: TLSAlert?
    /// The server certificate, when TLS 1.2 or older showed it.
    public var certificate: CertificateFacts?
    public var certificateProblem: String?
    /// Why the TLS reader stopped understanding the stream, if it did before encryption.
    public var problem: String?
    public init() {}
}

/// Plaintext that crossed the wire between a 220 to STARTTLS and the TLS handshake.
public struct InjectedPlaintext: Sendable, Hashable {
    public var bytes: Int
    public var frame: UInt64?
}

/// What the dialogue showed around STARTTLS, beyond the command and its reply: the evidence
/// the findings layer reads.
public struct UpgradeEvidence: Sendable, Hashable {
    /// The first plaintext AUTH, MAIL, RCPT, DATA or BDAT after STARTTLS was offered and
    /// before it was requested.
    public var plaintextAfterOfferFrame: UInt64?
    /// Client lines sent after the 220 to STARTTLS, before the ClientHello.
    public var commandInjection: InjectedPlaintext?
    /// Server bytes sent after its 220 to STARTTLS, before its ServerHello.
    public var responseInjection: InjectedPlaintext?
    /// The server sent bytes or closed its side.
    public var serverAnswered = false
    /// TLS records the server sent.
    public var serverTLSRecords = 0
    /// The HELO that followed a rejected EHLO.
    public var heloAfterRejectedEHLOFrame: UInt64?
    public init() {}
}

public struct AuthFacts: Sendable, Hashable {
    public var mechanism: String
    public var plaintext: Bool
    public var frame: UInt64
    public var reply: Int?
}

public enum MessageMethod: String, Sendable {
    case data = "DATA"
    case bdat = "BDAT"
}

/// One message whose content crossed the wire in plaintext.
public struct MessageFacts: Sendable, Hashable {
    public var method: MessageMethod
    /// Frame of the DATA command or of the first BDAT.
    public var frame: UInt64
    /// Content bytes (without the end-of-data line, dot-stuffing included).
    public var bytes: UInt64
    public var recipients: Int
    /// The server's final reply to the content, when seen.
    public var reply: Int?
    public var replyFrame: UInt64?
    /// The content was cut by the end of the capture or by a gap.
    public var truncated = false
    public var chunks = 0
    /// The envelope as the client sent it (empty with `--no-addresses`); the recipients are
    /// capped, those past the cap counted.
    public var envelope = EnvelopeAddresses()
    public var rcptNotListed = 0
    public var mailFrom: String? { envelope.mailFrom }
    public var rcptTo: [String] { envelope.rcptTo }
}

public struct TranscriptLine: Sendable, Hashable {
    public var direction: Direction
    public var frame: UInt64
    public var text: String
}

/// Everything smtpcap knows about one SMTP session when it ends.
public struct SessionRecord: Sendable {
    public var id: UInt64
    public var client: Endpoint
    public var server: Endpoint
    public var serverEvidence: ServerEvidence
    public var handshakeSeen: Bool
    public var start: Timestamp
    public var end: Timestamp
    public var firstFrame: UInt64
    public var clientStats: DirectionStats
    public var serverStats: DirectionStats
    public var closeReason: CloseReason?
    /// The capture interface's name, when the file gives one.
    public var interface: String?
    /// The tunnels around the connection, outermost first (empty: none).
    public var tunnel: [TunnelLayer] = []
    /// The connection went on after a pause longer than the idle timeout (the longest such
    /// pause, seconds of capture time): kept as one session, not split.
    public var resumedAfterIdleSeconds: Int64?
    /// Set by `probe` for its own connections.
    public var probe: ProbeTag?

    public var banner: String?
    public var bannerCode: Int?
    public var bannerFrame: UInt64?
    /// The host name the server declared (greeting or EHLO reply), for grouping sessions.
    public var serverName: String?
    public var greeting: String?  // "EHLO", "HELO" or nil
    public var heloName: String?
    /// The domains of the RCPT TO addresses, in order, lower-cased (ASCII), at most 32: kept
    /// for the TLS report's policy domains (`recordRecipientDomains`), also with
    /// `--no-addresses`.
    public var recipientDomains: [String] = []
    public var ehlo: [EHLOReply] = []
    public var starttls = STARTTLSFacts()
    public var tls: TLSFacts?
    public var auth: AuthFacts?
    public var messages: [MessageFacts] = []
    /// Messages past the listing cap.
    public var messagesNotListed = 0
    /// EHLO replies past the listing limit, and those of them without STARTTLS.
    public var ehloNotListed = 0
    public var ehloNotListedWithoutSTARTTLS = 0
    public var commands = 0
    public var anomalies: [Anomaly: Int] = [:]
    public var evidence = UpgradeEvidence()
    public var findings: [Finding] = []
    /// The large mail provider the server was recognised as (provider knowledge), if any.
    public var provider: String?
    public var verdict: Verdict = .inconclusive
    public var verdictReason = ""
    public var complete = false
    public var transcript: [TranscriptLine]?
    public var transcriptTruncated = false

    public var gaps: Int { clientStats.gaps + serverStats.gaps }
    public var ipVersion: Int { client.address.version }

    public init(info: ConnectionInfo) {
        id = info.id
        client = info.client
        server = info.server
        serverEvidence = info.serverEvidence
        handshakeSeen = info.handshakeSeen
        start = info.start
        end = info.start
        firstFrame = info.firstFrame
        clientStats = DirectionStats()
        serverStats = DirectionStats()
    }

    /// A session's record as it starts: with an empty transcript when one is kept, and TLS
    /// facts from the start on an implicit-TLS port.
    init(info: ConnectionInfo, transcript: Bool, implicitTLS: Bool) {
        self.init(info: info)
        if transcript { self.transcript = [] }
        if implicitTLS {
            var tls = TLSFacts()
            tls.implicit = true
            self.tls = tls
        }
    }

    /// An empty record to swap in where one is moved out (no field allocates).
    public static let placeholder = SessionRecord(info: ConnectionInfo(
        id: 0, client: Endpoint(address: IPAddress(ipv4: 0), port: 0), server: Endpoint(address: IPAddress(ipv4: 0), port: 0),
        serverEvidence: .guess, handshakeSeen: false, firstFrame: 0, start: .zero))

    /// Whether any EHLO reply listed STARTTLS, or nil when there was no EHLO reply.
    public var starttlsOfferedInEHLO: Bool? {
        ehlo.isEmpty ? nil : ehlo.contains { $0.starttls }
    }
}
