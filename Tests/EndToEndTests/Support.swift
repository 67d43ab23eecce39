import Foundation
import SMTPCapTestSupport

/// The facts compared per session, named as in the peer manifest and captures/expected.json.
struct SessionFacts: Equatable, CustomStringConvertible {
    var ehloStarttlsOffered: [Bool]
    /// smtpcap only: the same list without replies a gap damaged (cut by the capture).
    var ehloStarttlsOfferedComplete: [Bool]?
    var starttlsCommand: Bool
    var starttlsReply: Int?
    var tlsHandshake: Bool
    var tlsVersion: String?
    var plaintextDataMessages: Int
    var plaintextAuth: Bool

    /// Equal, where a reply smtpcap marks as damaged may be absent from the ground truth.
    func matches(_ truth: SessionFacts) -> Bool {
        var mine = self
        if mine.ehloStarttlsOffered != truth.ehloStarttlsOffered, let complete = ehloStarttlsOfferedComplete,
           complete == truth.ehloStarttlsOffered {
            mine.ehloStarttlsOffered = complete
        }
        mine.ehloStarttlsOfferedComplete = nil
        return mine == truth
    }

    var description: String {
        "ehlo=\(ehloStarttlsOffered) starttls=\(starttlsCommand)/\(starttlsReply.map(String.init) ?? "nil") tls=\(tlsHandshake)/\(tlsVersion ?? "nil") msgs=\(plaintextDataMessages) auth=\(plaintextAuth)"
    }

    /// From a manifest entry.
    init(manifest m: [String: Any]) {
        ehloStarttlsOffered = m["ehlo_starttls_offered"] as? [Bool] ?? []
        ehloStarttlsOfferedComplete = nil
        starttlsCommand = m["starttls_command"] as? Bool ?? false
        starttlsReply = m["starttls_reply"] as? Int
        tlsHandshake = m["tls_handshake"] as? Bool ?? false
        tlsVersion = (m["tls_version"] as? String).map { $0.replacingOccurrences(of: "TLSv", with: "TLS") }
        plaintextDataMessages = m["plaintext_data_messages"] as? Int ?? 0
        plaintextAuth = m["plaintext_auth"] as? Bool ?? false
    }

    /// From one of smtpcap's JSON session objects.
    init(smtpcap s: [String: Any]) {
        let starttls = s["starttls"] as? [String: Any] ?? [:]
        let tls = s["tls"] as? [String: Any]
        let tlsStarted = tls?["started"] as? Bool ?? false
        let starttlsFrame = starttls["frame"] as? Int ?? 0
        let accepted = starttls["reply"] as? Int == 220
        // EHLO replies seen in plaintext: after an accepted STARTTLS that led to TLS, none are.
        let plaintextEHLO = (s["ehlo"] as? [[String: Any]] ?? []).filter { e in
            !(accepted && tlsStarted && (e["frame"] as? Int ?? 0) > starttlsFrame)
        }
        ehloStarttlsOffered = plaintextEHLO.compactMap { $0["starttls"] as? Bool }
        ehloStarttlsOfferedComplete = plaintextEHLO.filter { $0["complete"] as? Bool ?? true }.compactMap { $0["starttls"] as? Bool }
        starttlsCommand = starttls["requested"] as? Bool ?? false
        starttlsReply = starttls["reply"] as? Int
        tlsHandshake = tlsStarted
        tlsVersion = tls?["version"] as? String
        plaintextDataMessages = (s["messages"] as? [Any] ?? []).count + (s["messages_not_listed"] as? Int ?? 0)
        let auth = s["auth"] as? [String: Any]
        plaintextAuth = auth?["plaintext"] as? Bool ?? false
    }
}
