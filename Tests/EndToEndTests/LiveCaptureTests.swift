import Foundation
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

    @Test(.enabled(if: canCapture, "needs root and python3"), .timeLimit(.minutes(2)))
    func capturesARealSessionOnLoopback() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("smtpcap-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let serverScript = dir.appendingPathComponent("server.py"), clientScript = dir.appendingPathComponent("client.py")
        try Data(Self.server.utf8).write(to: serverScript)
        try Data(Self.client.utf8).write(to: clientScript)

        // The server: keep its stdin open so it runs until we close it.
        let server = Process()
        server.executableURL = URL(fileURLWithPath: E2E.which("python3")!)
        server.arguments = [serverScript.path]
        let serverIn = Pipe(), serverOut = Pipe()
        server.standardInput = serverIn
        server.standardOutput = serverOut
        try server.run()
        defer {
            try? serverIn.fileHandleForWriting.close()
            if server.isRunning { server.terminate() }
            server.waitUntilExit()
        }
        let portLine = String(decoding: serverOut.fileHandleForReading.availableData, as: UTF8.self)
        let port = try #require(Int(portLine.trimmingCharacters(in: .whitespacesAndNewlines)), "server said \(portLine)")

        // smtpcap on lo, until one session ends.
        let out = dir.appendingPathComponent("out"), err = dir.appendingPathComponent("err")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let cap = Process()
        cap.executableURL = URL(fileURLWithPath: E2E.binary)
        cap.arguments = ["-i", "lo", "--ports", String(port), "--sessions", "1", "--duration", "60", "--json"]
        cap.standardOutput = try FileHandle(forWritingTo: out)
        cap.standardError = try FileHandle(forWritingTo: err)
        try cap.run()
        defer { if cap.isRunning { cap.terminate() }; cap.waitUntilExit() }
        let ready = Date().addingTimeInterval(20)
        while !(String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self).contains("listening on lo")) {
            guard Date() < ready, cap.isRunning else {
                Issue.record("smtpcap did not start: \(String(decoding: (try? Data(contentsOf: err)) ?? Data(), as: UTF8.self))")
                return
            }
            usleep(20_000)
        }

        let sent = try E2E.runProgram(E2E.which("python3")!, [clientScript.path, String(port)], timeout: 30)
        #expect(sent.status == 0, "client: \(sent.stderr)")

        let done = Date().addingTimeInterval(30)
        while cap.isRunning && Date() < done { usleep(20_000) }
        #expect(!cap.isRunning, "smtpcap should stop after one session")
        let text = String(decoding: (try? Data(contentsOf: out)) ?? Data(), as: UTF8.self)
        let result = E2E.Result(status: cap.terminationStatus, stdout: text, stderr: "")
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
        p.standardError = FileHandle.nullDevice
        try p.run()
        usleep(700_000)
        p.terminate()  // SIGTERM
        let deadline = Date().addingTimeInterval(10)
        while p.isRunning && Date() < deadline { usleep(20_000) }
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
