import Foundation
import SMTPCapTestSupport
import Testing

/// Live capture on loopback with libpcap, in the test itself: a real SMTP server (aiosmtpd)
/// and a real client (smtplib) exchange a message while smtpcap watches.
@Suite("Live capture on loopback")
struct LiveCaptureTests {
    static var canCapture: Bool { getuid() == 0 && E2E.which("python3") != nil }

    /// A server whose banner and EHLO keywords carry terminal escapes, to prove they are
    /// escaped; it offers no STARTTLS.
    static let server = #"""
    import asyncio, socket, sys
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import SMTP

    EVIL = "\x1b[31mRED\x1b]0;title\x07\x7f2J"

    class Handler:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):
            session.host_name = hostname
            return responses[:-1] + ["250-X-" + EVIL, responses[-1]]
        async def handle_DATA(self, server, session, envelope):
            return "250 2.0.0 queued"

    class Quiet(Controller):
        def factory(self):
            return SMTP(self.handler, hostname="mx.example.test", ident="ESMTP " + EVIL)

    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    c = Quiet(Handler(), hostname="127.0.0.1", port=port)
    c.start()
    print(port, flush=True)
    sys.stdin.read()
    c.stop()
    """#

    static let client = #"""
    import smtplib, sys
    port = int(sys.argv[1])
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as s:
        s.ehlo("client.example.test")
        s.sendmail("a@example.test", ["b@example.test"], "Subject: live\r\n\r\nTOP-SECRET-BODY-LINE\r\n")
    """#

    /// A running aiosmtpd server and an smtpcap watching its port on lo.
    final class Scene {
        let dir: URL
        let server = Process()
        let serverIn = Pipe()
        let cap = Process()
        var port = 0
        var out: URL { dir.appendingPathComponent("out") }
        var err: URL { dir.appendingPathComponent("err") }

        init(smtpcapArguments: [String]) throws {
            dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-live-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            let serverScript = dir.appendingPathComponent("server.py")
            try Data(LiveCaptureTests.server.utf8).write(to: serverScript)
            // The server: its stdin stays open so it runs until we close it.
            server.executableURL = URL(fileURLWithPath: E2E.which("python3")!)
            server.arguments = [serverScript.path]
            let serverOut = Pipe()
            server.standardInput = serverIn
            server.standardOutput = serverOut
            try server.run()
            let portLine = String(decoding: serverOut.fileHandleForReading.availableData, as: UTF8.self)
            port = try #require(Int(portLine.trimmingCharacters(in: .whitespacesAndNewlines)), "server said \(portLine)")

            FileManager.default.createFile(atPath: out.path, contents: nil)
            FileManager.default.createFile(atPath: err.path, contents: nil)
            cap.executableURL = URL(fileURLWithPath: E2E.binary)
            cap.arguments = ["-i", "lo", "--ports", String(port)] + smtpcapArguments
            cap.standardOutput = try FileHandle(forWritingTo: out)
            cap.standardError = try FileHandle(forWritingTo: err)
            try cap.run()
            let errURL = err, cap = cap
            let listening = E2E.waitUntil(seconds: 20) {
                !cap.isRunning || String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self).contains("listening on lo")
            }
            guard listening, cap.isRunning else {
                throw CocoaError(.fileReadUnknown, userInfo: ["smtpcap did not start": String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self)])
            }
        }

        func runClient(_ script: String) throws -> E2E.Result {
            let path = dir.appendingPathComponent("client-\(UUID().uuidString).py")
            try Data(script.utf8).write(to: path)
            return try E2E.runProgram(E2E.which("python3")!, [path.path, String(port)], timeout: 30)
        }

        /// Starts a client without waiting for it.
        func startClient(_ script: String) throws -> Process {
            let path = dir.appendingPathComponent("client-\(UUID().uuidString).py")
            try Data(script.utf8).write(to: path)
            let p = Process()
            p.executableURL = URL(fileURLWithPath: E2E.which("python3")!)
            p.arguments = [path.path, String(port)]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            return p
        }

        /// Waits for smtpcap to stop by itself; its output as a result.
        func finish(within seconds: Double) -> (stopped: Bool, result: E2E.Result) {
            let cap = cap
            let stopped = E2E.waitUntil(seconds: seconds) { !cap.isRunning }
            if !stopped { cap.terminate() }
            cap.waitUntilExit()
            let text = String(decoding: (try? Data(contentsOf: out)) ?? Data(), as: UTF8.self)
            return (stopped, E2E.Result(status: cap.terminationStatus, stdout: text, stderr: ""))
        }

        deinit {
            try? serverIn.fileHandleForWriting.close()
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
            if cap.isRunning { cap.terminate(); cap.waitUntilExit() }
            try? FileManager.default.removeItem(at: dir)
        }
    }

    @Test(.enabled(if: canCapture, "needs root and python3"), .timeLimit(.minutes(2)))
    func capturesARealSessionOnLoopback() throws {
        let scene = try Scene(smtpcapArguments: ["--sessions", "1", "--duration", "60", "--json"])
        let port = scene.port
        let sent = try scene.runClient(Self.client)
        #expect(sent.status == 0, "client: \(sent.stderr)")

        let (stopped, result) = scene.finish(within: 30)
        #expect(stopped, "smtpcap should stop after one session")
        let text = result.stdout
        #expect(result.status == 1)
        let session = try #require(result.sessions.first, "no session in \(text)")
        #expect(session["server"] as? String == "127.0.0.1:\(port)")
        #expect(session["greeting"] as? String == "EHLO")
        #expect(session["complete"] as? Bool == true)
        #expect(session["verdict"] as? String == "plaintext")
        let codes = (session["findings"] as? [[String: Any]] ?? []).compactMap { $0["code"] as? String }
        #expect(codes == ["starttls-missing", "plaintext-data"])
        let message = try #require((session["messages"] as? [[String: Any]])?.first)
        #expect(message["reply"] as? Int == 250)
        #expect(message["rcpt_count"] as? Int == 1)
        // Nothing from the wire reaches the terminal raw, and the body is not printed.
        #expect(!text.contains("TOP-SECRET-BODY-LINE"))
        #expect(!text.unicodeScalars.contains { $0.value == 0x1b || $0.value == 0x07 || $0.value == 0x7f })
        #expect(text.contains("\\u001b[31mRED"))
    }

    /// Evidence and the TLS report from a live capture: smtpcap switches to nobody after
    /// opening the interface, so it writes them as nobody (the directory it made is theirs);
    /// its spool of packets is gone afterwards.
    @Test(.enabled(if: canCapture, "needs root and python3"), .timeLimit(.minutes(2)))
    func liveEvidenceAndTLSReport() throws {
        let outputs = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-live-ev-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: outputs, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: outputs) }
        let evidence = outputs.appendingPathComponent("evidence"), report = outputs.appendingPathComponent("tlsrpt.json")
        let scene = try Scene(smtpcapArguments: ["--sessions", "1", "--duration", "60", "--json", "--evidence", evidence.path,
                                                 "--tls-report", report.path])
        let sent = try scene.runClient(Self.client)
        #expect(sent.status == 0, "client: \(sent.stderr)")
        let (stopped, result) = scene.finish(within: 30)
        #expect(stopped)
        let session = try #require(result.sessions.first, "\(result.stdout)")
        let uid = try #require(session["uid"] as? String)
        let files = try FileManager.default.contentsOfDirectory(atPath: evidence.path).sorted()
        #expect(files == ["session-1-plaintext-\(uid).pcap", "session-1-plaintext-\(uid).txt"], "spool removed, evidence kept")
        let again = try E2E.run(["-r", evidence.appendingPathComponent(files[0]).path, "--json", "--ports", String(scene.port)])
        #expect(again.sessions.count == 1)
        #expect(again.sessions.first?["uid"] as? String == uid)
        #expect((again.sessions.first?["findings"] as? [[String: Any]])?.count == (session["findings"] as? [[String: Any]])?.count)
        let text = try String(contentsOf: report, encoding: .utf8)
        #expect(text.contains(#""total-failure-session-count":1"#) && text.contains(#""policy-domain":"example.test""#), "\(text)")
    }

    /// A client that opens a session and goes quiet: the session ends by the idle timeout on
    /// the wall clock, while no packet arrives, and is printed then.
    @Test(.enabled(if: canCapture, "needs root and python3"), .timeLimit(.minutes(1)))
    func quietSessionEndsByIdleTimeout() throws {
        let scene = try Scene(smtpcapArguments: ["--sessions", "1", "--idle-timeout", "1", "--duration", "40", "--json"])
        let quietClient = #"""
        import socket, sys, time
        s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
        f = s.makefile("rb")
        f.readline()
        s.sendall(b"EHLO client.example.test\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        time.sleep(6)
        s.close()
        """#
        let client = try scene.startClient(quietClient)
        defer { if client.isRunning { client.terminate() }; client.waitUntilExit() }
        // The client holds the connection for 6 s after EHLO: the session must be reported
        // before that, with no packet to drive the clock.
        let (stopped, result) = scene.finish(within: 5)
        #expect(stopped, "smtpcap should end the quiet session by the idle timeout")
        #expect(client.isRunning, "the client had not closed the connection yet")
        let session = try #require(result.sessions.first, "no session in \(result.stdout)")
        #expect(session["close"] as? String == "idle")
        #expect(session["greeting"] as? String == "EHLO")
    }

    @Test(.enabled(if: canCapture, "needs root"), .timeLimit(.minutes(1)))
    func durationEndsAQuietCapture() throws {
        // Nothing on this port: --duration must still end the capture, cleanly, with a summary.
        let r = try E2E.run(["-i", "lo", "--ports", "9", "--duration", "1", "--json"], timeout: 20)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.summary?["sessions"] as? Int == 0)
    }

    @Test(.enabled(if: canCapture, "needs root"), .timeLimit(.minutes(1)))
    func sigtermEndsALiveCaptureCleanly() throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: E2E.binary)
        p.arguments = ["-i", "lo", "--ports", "9", "--json"]
        let out = Pipe()
        p.standardOutput = out
        let errURL = FileManager.default.temporaryDirectory.appendingPathComponent("sigterm-\(UUID().uuidString).err")
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: errURL) }
        p.standardError = try FileHandle(forWritingTo: errURL)
        try p.run()
        // The handlers are installed before the capture opens: once it says it is listening,
        // SIGTERM is the stop being tested, not the default action.
        let listening = E2E.waitUntil(seconds: 20) {
            String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self).contains("listening on")
        }
        #expect(listening, "smtpcap never said it was listening")
        p.terminate()  // SIGTERM
        E2E.waitUntil(seconds: 10) { !p.isRunning }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            Issue.record("SIGTERM did not end the capture")
        }
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationReason == .exit)
        #expect(p.terminationStatus == 0)
        #expect(text.contains("\"type\":\"summary\""))
    }
}
