import Testing
@testable import SMTPMachine

/// The (command, reply) transition table, row by row, as RFC 5321, 3207, 4954 and 3030 define
/// the replies: what each final reply to a pending command does to the dialogue.
@Suite("Reply transitions")
struct TransitionTests {
    struct Row: CustomStringConvertible, Sendable {
        var command: CommandKind
        var code: Int
        var expected: ReplyTransition
        var description: String { "\(command) \(code) -> \(expected)" }
    }

    static let rows: [Row] = [
        // EHLO: every reply is read (a 5xx is EHLO rejected, recorded with the reply).
        Row(command: .ehlo, code: 250, expected: .ehloAnswered),
        Row(command: .ehlo, code: 502, expected: .ehloAnswered),
        Row(command: .helo, code: 250, expected: .heloAccepted),
        Row(command: .helo, code: 501, expected: .none),
        // STARTTLS (RFC 3207): 220 to go ahead; 454 TLS not available; 501 syntax.
        Row(command: .starttls, code: 220, expected: .upgradeToTLS),
        Row(command: .starttls, code: 454, expected: .starttlsRefused),
        Row(command: .starttls, code: 502, expected: .starttlsRefused),
        // AUTH (RFC 4954): 334 asks for data; 235 success; 535 failure.
        Row(command: .auth, code: 334, expected: .readAuthData),
        Row(command: .authResponse, code: 334, expected: .readAuthData),
        Row(command: .auth, code: 235, expected: .authAnswered),
        Row(command: .authResponse, code: 535, expected: .authAnswered),
        // A mail transaction.
        Row(command: .mail, code: 250, expected: .transactionStarted),
        Row(command: .mail, code: 550, expected: .none),
        Row(command: .rcpt, code: 250, expected: .recipientAccepted),
        Row(command: .rcpt, code: 251, expected: .recipientAccepted),
        Row(command: .rcpt, code: 550, expected: .none),
        Row(command: .data, code: 354, expected: .readContent),
        Row(command: .data, code: 554, expected: .dataRefused),
        Row(command: .data, code: 250, expected: .dataRefused),
        Row(command: .dataEnd, code: 250, expected: .messageAnswered),
        Row(command: .dataEnd, code: 552, expected: .messageAnswered),
        // BDAT (RFC 3030): a chunk's reply ends the message only when it is the last, or a
        // failure.
        Row(command: .bdat(last: false), code: 250, expected: .none),
        Row(command: .bdat(last: false), code: 552, expected: .messageAnswered),
        Row(command: .bdat(last: true), code: 250, expected: .messageAnswered),
        Row(command: .rset, code: 250, expected: .transactionReset),
        Row(command: .quit, code: 221, expected: .none),
        Row(command: .other, code: 250, expected: .none),
        Row(command: .bdatInvalid, code: 501, expected: .none),
    ]

    @Test(arguments: rows)
    func transitionFollowsTheRFCs(_ row: Row) {
        #expect(SMTPSession.transition(row.command, reply: row.code) == row.expected)
    }

    /// Every transition is reached by some row: none is dead.
    @Test func everyTransitionIsReached() {
        let reached = Set(Self.rows.map(\.expected).map { "\($0)" })
        for t in ReplyTransition.allCases { #expect(reached.contains("\(t)"), "\(t)") }
    }
}
