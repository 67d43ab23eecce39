import Findings
import SMTPCapCore
import SMTPMachine

// Who removed STARTTLS: the path line and object of a session, and the summary's
// cross-session path and certificate findings.

extension JSONLinesReport {
    static func pathObject(_ path: PathEvidence, into p: inout JSONObject) {
        p.int("server_ttl", path.serverTTL)
        p.int("server_initial_ttl", path.serverInitialTTL)
        p.int("server_hops", path.serverHops)
        p.int("client_ttl", path.clientTTL)
        p.int("client_initial_ttl", path.clientInitialTTL)
        p.int("client_hops", path.clientHops)
        if let synAck = path.synAck {
            p.custom("syn_ack") { out in
                out.append(0x22)
                synAck.withText { out.append(span: $0) }
                out.append(0x22)
            }
        } else {
            p.raw("syn_ack", "null")
        }
        p.int("server_ttl_changes", path.serverTTLChanges)
        p.string("vantage", path.vantage?.rawValue)
    }

    static func crossSession(_ s: CaptureSummary, into o: inout JSONObject) {
        o.rawText("path_inconsistent", JSONObject.array(s.pathInconsistencies.map { i in
            var x = JSONObject()
            x.string("server", i.server)
            func path(_ p: PathSignature) -> String {
                var y = JSONObject()
                y.int("ip_version", p.ipVersion)
                y.int("ttl", p.ttl)
                y.int("hops", p.hops)
                y.string("syn_ack", p.synAck?.description)
                y.int("example_session", p.session)
                return y.closed
            }
            x.rawText("without_starttls", path(i.without))
            x.rawText("with_starttls", path(i.with))
            x.string("message", i.message)
            return x.closed
        }))
        o.rawText("certificate_inconsistent", JSONObject.array(s.certificateInconsistencies.map { i in
            var x = JSONObject()
            x.string("server", i.server)
            x.rawText("certificates", JSONObject.array([i.first, i.second].map { c in
                var y = JSONObject()
                y.string("sha256", c.sha256)
                y.string("key_type", c.keyType)
                y.int("ip_version", c.ipVersion)
                y.int("hops", c.hops)
                y.int("example_session", c.session)
                return y.closed
            }))
            x.string("message", i.message)
            return x.closed
        }))
    }
}

extension TextReport {
    /// `path      server TTL 63 (1 hop away), client TTL 64 (0 hops): captured at the client;
    /// SYN-ACK mss=1460,sack,ts,nop,wscale=7`.
    func pathLine(_ p: PathEvidence, into w: inout TextWriter) {
        guard p.serverTTL != nil || p.clientTTL != nil else { return }
        w.add("  path      ")
        var any = false
        if let ttl = p.serverTTL, let hops = p.serverHops {
            w.add("server TTL ")
            w.int(ttl)
            w.add(" (")
            w.int(hops)
            w.add(hops == 1 ? " hop)" : " hops)")
            any = true
        }
        if let ttl = p.clientTTL, let hops = p.clientHops {
            if any { w.add(", ") }
            w.add("client TTL ")
            w.int(ttl)
            w.add(" (")
            w.int(hops)
            w.add(hops == 1 ? " hop)" : " hops)")
        }
        switch p.vantage {
        case .client: w.add(": captured on the client's host or link")
        case .server: w.add(": captured at the server (the client is routed to it)")
        case .sameLink: w.add(": the server answered from the client's host or link")
        case .between: w.add(": captured between them")
        case nil: break
        }
        if let synAck = p.synAck {
            w.add("; SYN-ACK ")
            synAck.withText { w.out.append(span: $0) }
        }
        if p.serverTTLChanges > 0, let changed = p.changedTTL {
            w.add("; ")
            w.int(p.serverTTLChanges)
            w.add(" server packet(s) with TTL ")
            w.int(changed)
            w.add(" ")
            w.frame(p.changedFrame)
        }
        w.add("\n")
    }

}
