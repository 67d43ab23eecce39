import Findings
import SMTPCapCore

/// `probe`'s side-by-side summary per MX host and address family, its problems and its
/// verdict line, as text or a JSON line.
public enum ProbeReport {
    public static func text(_ rows: [ProbeRow], problems: [(target: String, message: String)], wireNote: String?, verdict: String) -> String {
        let out = ByteSink(capacity: 4096)
        func line(_ s: String) {
            Escape.terminal(s, into: out)
            out.append(0x0a)
        }
        line("probe")
        for r in rows {
            var where_ = r.mx.map { "\($0)" } ?? r.address
            if let p = r.preference { where_ += " (MX \(p))" }
            line("  \(where_)  IPv\(r.family) \(r.address)")
            if let e = r.error { line("      error     \(e)") }
            if let b = r.banner { line("      banner    \(b)") }
            if let offered = r.starttlsOffered {
                line("      STARTTLS  " + (offered ? "offered" : "not offered" + (r.masked.map { " (masked as \($0))" } ?? "")))
            }
            if let v = r.tlsVersion {
                line("      TLS       \(v) \(r.tlsCipher ?? "")" + (r.certificateSHA256.map { " cert sha256=\($0)" } ?? ""))
            }
            if let h = r.serverHops { line("      hops      \(h)") }
            if let v = r.verdict { line("      verdict   \(v.rawValue)") }
            if !r.fromWire && r.banner != nil { line("      evidence  the socket's view (no captured session)") }
        }
        for p in problems { line("  \(p.target): \(p.message)") }
        if let wireNote { line("  capture   \(wireNote)") }
        line("  verdict   \(verdict)")
        return out.string(from: 0)
    }

    public static func json(_ rows: [ProbeRow], problems: [(target: String, message: String)], wireNote: String?, verdict: String) -> String {
        var o = JSONObject()
        o.string("type", "probe")
        o.objects("rows", rows) { r, x in
            x.string("target", r.target)
            x.string("mx", r.mx)
            x.int("preference", r.preference)
            x.string("address", r.address)
            x.int("ip_version", r.family)
            x.string("banner", r.banner)
            x.bool("starttls_offered", r.starttlsOffered)
            x.string("masked", r.masked)
            x.string("tls_version", r.tlsVersion)
            x.string("tls_cipher", r.tlsCipher)
            x.string("certificate_sha256", r.certificateSHA256)
            x.int("server_hops", r.serverHops)
            x.string("verdict", r.verdict?.rawValue)
            x.string("error", r.error)
            x.bool("wire_evidence", r.fromWire)
            x.bool("not_testable_here", r.notTestableHere)
        }
        o.objects("problems", problems) { p, x in
            x.string("target", p.target)
            x.string("message", p.message)
        }
        o.string("capture", wireNote)
        o.string("verdict", verdict)
        return o.closed + "\n"
    }
}
