import SMTPCapCore

/// What the client direction is doing. Each case carries what only it needs; a transition is
/// an assignment of a new case, made in one place per event.
enum ClientState {
    /// Reading command lines.
    case commands
    /// After a 334: the next line is an AUTH payload (a secret: counted, never kept).
    case authData
    /// Waiting for the reply to DATA or STARTTLS: later bytes are held until it comes.
    case holding(HeldBytes)
    /// DATA content, scanned for its end line and counted, never kept.
    case content(BodyScanner)
    /// The bytes of a BDAT chunk, counted.
    case chunk(BDATChunk)
    /// After a 220 to STARTTLS, before the first TLS record.
    case preTLS(PlaintextBeforeTLS)
    /// TLS records, read by the client's TLS reader.
    case tls
    /// Nothing more can be understood (encrypted, or TLS after a gap): count only.
    case opaque
    /// Only while a payload is changed in place (so its buffer is not copied); never seen
    /// between two events.
    case modifying

    /// States whose input changes no buffer: content, chunk bytes and encrypted bytes, most
    /// of a session's bytes.
    var onlyCounts: Bool {
        switch self {
        case .content, .chunk, .opaque: true
        case .commands, .authData, .holding, .preTLS, .tls, .modifying: false
        }
    }
}

/// What the server direction is doing.
enum ServerState {
    /// Reading reply lines.
    case replies
    /// After its 220 to STARTTLS, before its first TLS record.
    case preTLS(PlaintextBeforeTLS)
    /// TLS records, read by the server's TLS reader.
    case tls
    /// Encrypted or not understood: count only.
    case opaque
    /// Only while a payload is changed in place.
    case modifying
}

/// What a final reply to a pending command does (`SMTPSession.transition`).
enum ReplyTransition: Equatable, CaseIterable, Sendable {
    /// Nothing beyond counting the reply.
    case none
    /// EHLO answered: its extension keywords are read (STARTTLS offered or not).
    case ehloAnswered
    /// HELO accepted: the session has no extensions.
    case heloAccepted
    /// 220 to STARTTLS: both directions wait for TLS.
    case upgradeToTLS
    /// STARTTLS refused: bytes held behind it are read as commands again.
    case starttlsRefused
    /// 334: the next client line is AUTH data (a secret).
    case readAuthData
    /// AUTH's final reply.
    case authAnswered
    /// MAIL accepted: a new transaction.
    case transactionStarted
    /// RCPT accepted.
    case recipientAccepted
    /// 354: the client's bytes are message content.
    case readContent
    /// DATA refused: bytes held behind it are read as commands again.
    case dataRefused
    /// The final reply to a message's content (end of DATA, BDAT LAST, a failed chunk).
    case messageAnswered
    /// RSET: the transaction is dropped.
    case transactionReset
}

/// Client bytes sent ahead of the reply to DATA or STARTTLS (pipelined content, or an
/// injection), held until the reply says how to read them.
struct HeldBytes {
    static let limit = 64 * 1024
    var bytes: [UInt8] = []
    /// Where the first held byte came from.
    var meta: ChunkMeta?
}

/// The chunk of a `BDAT <size> [LAST]` whose bytes are still coming.
struct BDATChunk {
    var remaining: UInt64
    var last: Bool
}

/// Plaintext one side sent after the 220 to STARTTLS: the other side may still go on in the
/// clear (no TLS followed), or it was injected.
struct PlaintextBeforeTLS {
    static let limit = 16 * 1024
    var bytes: [UInt8] = []
    /// Complete lines among the bytes (client side).
    var lines = 0
    /// Where the first byte came from.
    var firstMeta: ChunkMeta?

    var atLineStart: Bool { bytes.isEmpty || bytes.last == 0x0a }
}

/// Facts about the dialogue as a whole that, once true, stay true. They are not modes: each
/// direction's mode is its state above.
struct Milestones: OptionSet {
    let rawValue: UInt8
    /// The greeting (or the first reply standing in for it) has been read.
    static let greeted = Milestones(rawValue: 1 << 0)
    /// An EHLO came back 5xx: a following HELO is the fallback.
    static let ehloRejected = Milestones(rawValue: 1 << 1)
    /// The server answered STARTTLS with 220.
    static let starttlsAccepted = Milestones(rawValue: 1 << 2)
    /// A gap was seen in either direction.
    static let gapSeen = Milestones(rawValue: 1 << 3)
    static let clientClosed = Milestones(rawValue: 1 << 4)
    static let serverClosed = Milestones(rawValue: 1 << 5)
}

/// The heap bytes the machine holds, as the flow table's budget counts them. The sum reads a
/// dozen heap headers, so it is kept until input that may change a buffer arrives: bytes read
/// in a state that only counts change none.
struct BufferTally {
    /// The last sum, or nil when input since may have changed it.
    var known: Int?

    mutating func invalidate() { known = nil }
}
