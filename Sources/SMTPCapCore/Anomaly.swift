/// Stable names of protocol anomalies: hostile or broken traffic that hit a bound or broke the
/// dialogue's rules. Counted per session; downstream tools match on the raw strings: never
/// rename one.
public enum Anomaly: String, Sendable, CaseIterable, Comparable {
    /// Bytes were missing from the capture (a gap event).
    case captureGap = "capture-gap"
    /// A line cut by a gap still counted (its verb or code was whole).
    case lineCutByGap = "line-cut-by-gap"
    /// A line longer than the framer keeps: the rest was counted, not kept.
    case lineTruncated = "line-truncated"
    /// A command line over RFC 5321's 512 bytes.
    case commandLineOver512 = "command-line-over-512"
    /// A reply line over RFC 5321's 512 bytes.
    case replyLineOver512 = "reply-line-over-512"
    /// A verb smtpcap does not know.
    case unknownCommand = "unknown-command"
    /// `BDAT` arguments that are not a size and an optional LAST.
    case bdatInvalid = "bdat-invalid"
    /// More pipelined commands waiting for replies than the machine keeps.
    case pendingCommandsLimit = "pending-commands-limit"
    /// More client bytes sent ahead of a DATA or STARTTLS reply than the machine holds.
    case heldBytesLimit = "held-bytes-limit"
    /// Bytes held behind a pipelined DATA or STARTTLS that a 334 left unplaceable: dropped
    /// unread.
    case heldBytesDropped = "held-bytes-dropped"
    /// A server line that is not a reply line.
    case notAReplyLine = "not-a-reply-line"
    /// A reply that no pending command can take.
    case replyWithoutCommand = "reply-without-command"
    /// A reply that fits only a later command: the commands before it lost their replies.
    case replyResync = "reply-resync"
    /// A reply of more than 10,000 lines (counted once per 10,000).
    case replyOver10000Lines = "reply-over-10000-lines"
    /// EHLO replies past the listing cap.
    case ehloRepliesNotListed = "ehlo-replies-not-listed"

    public static func < (a: Anomaly, b: Anomaly) -> Bool { a.rawValue < b.rawValue }
}
