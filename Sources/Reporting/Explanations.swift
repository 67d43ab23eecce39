import SMTPCapCore
import TCPReassembly

/// What to say when the capture held packets but (almost) none of them made an SMTP session:
/// never a silent all-clear.
public enum CaptureExplanation {
    /// One sentence on what was seen instead, or nil when the sessions account for the capture.
    /// Said when no session was found in packets, or when most packets could not be read
    /// (malformed, or fragments that never completed).
    public static func notSMTP(_ capture: CaptureFacts, sessions: Int) -> String? {
        guard capture.packets > 0 else { return nil }
        let unread = capture.malformed + capture.defragment.leftOver
        let mostlyUnread = unread * 2 > capture.packets
        guard sessions == 0 || mostlyUnread else { return nil }
        var parts: [String] = []
        for (what, n) in capture.otherTraffic.top(4) {
            let portHint: String? = what.kind == OtherTraffic.Kind.tcp ? "SMTP there? add --ports \(what.value)" : nil
            let hint = what.hint ?? portHint
            parts.append("\(n) \(what.description)" + (hint.map { " (\($0))" } ?? ""))
        }
        let listed = capture.otherTraffic.top(4).reduce(UInt64(0)) { $0 + $1.packets }
        let rest = capture.otherTraffic.total - listed
        if rest > 0 { parts.append("\(rest) other") }
        if capture.malformed > 0 {
            let sorted: [(key: String, value: UInt64)] = capture.malformedReasons.sorted { a, b in
                a.value != b.value ? a.value > b.value : a.key < b.key
            }
            let reasons = sorted.prefix(3).map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            parts.append("\(capture.malformed) malformed (\(reasons))")
        }
        if capture.defragment.leftOver > 0 {
            parts.append("\(capture.defragment.leftOver) IP fragment(s) that never made a whole datagram")
        }
        if capture.emptyConnections > 0 {
            parts.append("\(capture.emptyConnections) connection(s) on the SMTP ports that carried no data")
        }
        let head = sessions == 0
            ? "\(capture.packets) packet(s), none reached an SMTP session"
            : "most of the \(capture.packets) packet(s) could not be read"
        return parts.isEmpty ? head : head + ": " + parts.joined(separator: "; ")
    }
}

