/// Stable finding codes. Downstream tools match on these strings: never rename one.
public enum FindingCode: String, Sendable, CaseIterable, Comparable {
    // The two reasons smtpcap exists.
    case starttlsMissing = "starttls-missing"
    case plaintextData = "plaintext-data"
    // Evidence of tampering on the path.
    case starttlsStripped = "starttls-stripped"
    case bannerMasked = "banner-masked"
    case starttlsInconsistent = "starttls-inconsistent"
    /// Server packets arrived with another TTL than the rest: another box sent or rewrote them.
    case serverTTLChanged = "server-ttl-changed"
    /// Summary: sessions to one server without STARTTLS came over another path than those with.
    case pathInconsistent = "path-inconsistent"
    /// Summary: one server name presented different certificates on different paths.
    case certificateInconsistent = "certificate-inconsistent"
    // Other findings.
    case plaintextAuth = "plaintext-auth"
    case starttlsRefused = "starttls-refused"
    case starttlsUnused = "starttls-unused"
    case starttlsCommandInjection = "starttls-command-injection"
    case starttlsResponseInjection = "starttls-response-injection"
    case tlsNotStarted = "tls-not-started"
    case ehloRejected = "ehlo-rejected"
    case captureGap = "capture-gap"
    // What TLS was agreed.
    case weakTLS = "weak-tls"
    case tlsFailed = "tls-failed"
    /// Informational: opportunistic SMTP TLS accepts these certificates.
    case certificateExpired = "certificate-expired"
    case certificateSelfSigned = "certificate-self-signed"
    // Hostile or broken traffic that hit a bound.
    case protocolAnomaly = "protocol-anomaly"

    /// The position in declaration order (a test checks it against `allCases`).
    public var rank: Int {
        switch self {
        case .starttlsMissing: 0
        case .plaintextData: 1
        case .starttlsStripped: 2
        case .bannerMasked: 3
        case .starttlsInconsistent: 4
        case .serverTTLChanged: 5
        case .pathInconsistent: 6
        case .certificateInconsistent: 7
        case .plaintextAuth: 8
        case .starttlsRefused: 9
        case .starttlsUnused: 10
        case .starttlsCommandInjection: 11
        case .starttlsResponseInjection: 12
        case .tlsNotStarted: 13
        case .ehloRejected: 14
        case .captureGap: 15
        case .weakTLS: 16
        case .tlsFailed: 17
        case .certificateExpired: 18
        case .certificateSelfSigned: 19
        case .protocolAnomaly: 20
        }
    }

    public static func < (a: FindingCode, b: FindingCode) -> Bool {
        a.rank < b.rank
    }
}

/// One finding: a stable code, the frame that proves it, and a one-line message. The
/// message may quote wire text; reporters escape it.
public struct Finding: Sendable, Hashable {
    public var code: FindingCode
    public var frame: UInt64?
    public var message: String

    public init(code: FindingCode, frame: UInt64?, message: String) {
        self.code = code
        self.frame = frame
        self.message = message
    }
}

/// The one-word answer per session.
public enum Verdict: String, Sendable, CaseIterable {
    /// The position in declaration order.
    public var rank: Int {
        switch self {
        case .encrypted: 0
        case .plaintext: 1
        case .stripped: 2
        case .inconclusive: 3
        }
    }

    case encrypted
    case plaintext
    /// Evidence that a box on the path removed STARTTLS.
    case stripped
    /// Gaps, a mid-session start, or no message exchanged: not enough to say.
    case inconclusive
}
