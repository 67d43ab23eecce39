import Foundation
import SMTPCapTestSupport
import Testing

/// Captures other projects made, with the facts their expected output states
/// (`../shared/peer-captures/manifest.json`). Skipped where that folder is absent.
struct PeerCase: CustomStringConvertible, @unchecked Sendable {
    var entry: [String: Any]
    var file: String { entry["file"] as? String ?? "?" }
    var description: String { file }
}

func loadPeerCases() -> [PeerCase] {
    let manifest = E2E.peerCaptures.appendingPathComponent("manifest.json")
    guard let data = try? Data(contentsOf: manifest),
          let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [] }
    return list.map { PeerCase(entry: $0) }
}

@Suite("Peer captures (../shared/peer-captures)")
struct PeerCaptureTests {
    static let cases = loadPeerCases()

    @Test(.enabled(if: !cases.isEmpty, "../shared/peer-captures is not present"), arguments: cases)
    func agreesWithManifest(_ c: PeerCase) throws {
        let extra = c.entry["decoded_as_smtp_ports"] as? [Int] ?? []
        let ports = Array(Set([25, 587, 465, 2525] + extra)).sorted().map(String.init).joined(separator: ",")
        let result = try E2E.run(["-r", E2E.peerCaptures.appendingPathComponent(c.file).path, "--json", "--ports", ports])
        #expect(result.status == 0 || result.status == 1, "\(result.stderr)")
        let byEndpoints = Dictionary(result.sessions.map { ("\($0["client"]!) \($0["server"]!)", $0) }, uniquingKeysWith: { a, _ in a })
        for expected in c.entry["sessions"] as? [[String: Any]] ?? [] {
            let key = "\(expected["client"]!) \(expected["server"]!)"
            guard let session = byEndpoints[key] else {
                Issue.record("\(c.file): no session \(key); got \(byEndpoints.keys.sorted())")
                continue
            }
            let mine = SessionFacts(smtpcap: session), truth = SessionFacts(manifest: expected)
            #expect(mine.matches(truth), "\(c.file) \(key): smtpcap \(mine) vs manifest \(truth); \(expected["notes"] ?? "")")
            #expect(session["ip_version"] as? Int == expected["ip_version"] as? Int)
            // The core findings follow the facts, with no false positive either way.
            let codes = (session["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
            let facts = SessionFacts(manifest: expected)
            #expect(codes.filter { $0 == "plaintext-data" }.count == facts.plaintextDataMessages, "\(c.file) \(key)")
            #expect(codes.contains("plaintext-auth") == facts.plaintextAuth, "\(c.file) \(key)")
            #expect(codes.contains("capture-gap") == ((session["gaps"] as? Int ?? -1) > 0), "\(c.file) \(key)")
            // starttls-missing: one per EHLO reply without STARTTLS, except one answering an
            // EHLO after an accepted STARTTLS (the server must not offer it again).
            var counted = facts.ehloStarttlsOffered
            if facts.starttlsReply == 220, let commands = expected["commands"] as? [String],
               let starttlsAt = commands.firstIndex(of: "STARTTLS") {
                counted = Array(counted.prefix(commands[..<starttlsAt].filter { $0 == "EHLO" }.count))
            }
            // Each reply without STARTTLS is either reported or marked damaged by a gap.
            let damaged = (session["ehlo"] as? [[String: Any]] ?? []).filter { ($0["complete"] as? Bool) == false && ($0["starttls"] as? Bool) == false }.count
            #expect(codes.filter { $0 == "starttls-missing" }.count + damaged == counted.filter { !$0 }.count, "\(c.file) \(key)")
        }
    }
}
