import Foundation
import Testing

/// `smtptape replay` as a process: the address line, exit codes, reports, signals.
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct ReplayCLITests {
    static let scenario = """
        version: 1
        name: one message
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx.example.com
              250 PIPELINING
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: hi

              hello
            reply: 250 2.0.0 queued
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    /// smtplib sends the scenario's message (or strays to `to`).
    static func client(port: Int, to: String = "bob@example.net") throws -> Tools.Result {
        try Tools.run(["python3", "-c", """
            import smtplib
            with smtplib.SMTP("127.0.0.1", \(port), timeout=10) as c:
                try:
                    c.sendmail("alice@example.com", ["\(to)"], "Subject: hi\\r\\n\\r\\nhello\\r\\n")
                except smtplib.SMTPException as e:
                    print("refused", e)
            """])
    }

    static func folder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("replay-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test("the address first, a passing session, exit 0; the report, JUnit and the message file agree")
    func passes() throws {
        let dir = try Self.folder()
        let file = dir.appendingPathComponent("s.yaml").path
        try Data(Self.scenario.utf8).write(to: URL(fileURLWithPath: file))
        let report = dir.appendingPathComponent("report.jsonl").path, junit = dir.appendingPathComponent("junit.xml").path
        let server = try ReplayProcess([file, "--listen", "127.0.0.1:0", "--sessions", "1", "--report", report, "--junit", junit,
                                        "-o", dir.appendingPathComponent("mail").path])
        #expect(server.address.range(of: #"^127\.0\.0\.1:[0-9]+$"#, options: .regularExpression) != nil, "first line: \(server.address)")
        let client = try Self.client(port: server.port)
        let end = server.finish()
        #expect(end.status == 0, "\(end.stderr)")
        #expect(client.stdout.isEmpty, "\(client.stdout)")
        #expect(end.stderr.contains("session 1 (127.0.0.1:") && end.stderr.contains("passed, 6 steps, 1 message"))
        let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        let verdict = try JSONSerialization.jsonObject(with: Data(lines[0].utf8)) as? [String: Any]
        #expect(verdict?["type"] as? String == "verdict" && verdict?["passed"] as? Bool == true && verdict?["scenario"] as? String == "one message")
        #expect((verdict?["steps"] as? [[String: Any]])?.map { $0["status"] as? String } == Array(repeating: "passed", count: 6))
        let message = (verdict?["messages"] as? [[String: Any]])?.first
        #expect(message?["mail_from"] as? String == "alice@example.com" && message?["rcpt_to"] as? [String] == ["bob@example.net"])
        let summary = try JSONSerialization.jsonObject(with: Data(lines[1].utf8)) as? [String: Any]
        #expect(summary?["type"] as? String == "summary" && summary?["passed"] as? Bool == true && summary?["sessions"] as? Int == 1)
        let xml = try String(contentsOfFile: junit, encoding: .utf8)
        #expect(xml.contains("<testcase classname=\"one message\"") && !xml.contains("<failure"))
        let eml = try String(contentsOfFile: dir.appendingPathComponent("mail/session-0001-message-01.eml").path, encoding: .utf8)
        #expect(eml == "Subject: hi\r\n\r\nhello\r\n")
    }

    @Test("a client that strays: exit 1, the step named on standard error and in JUnit")
    func fails() throws {
        let file = try Tools.temporaryFile("s.yaml", contents: Self.scenario)
        let junit = file + ".xml"
        let server = try ReplayProcess([file, "--listen", "127.0.0.1:0", "--sessions", "1", "--junit", junit])
        let client = try Self.client(port: server.port, to: "eve@example.org")
        let end = server.finish()
        #expect(end.status == 1)
        #expect(client.stdout.contains("refused"))
        #expect(end.stderr.contains("FAILED") && end.stderr.contains("step 3 mismatched: expected 'RCPT TO:<bob@example.net>', got 'rcpt TO:<eve@example.org>'"),
                "\(end.stderr)")
        #expect(end.stderr.contains("smtptape: 1 session, 0 passed, 1 failed"))
        #expect(try String(contentsOfFile: junit, encoding: .utf8).contains("<failure message=\"step 3 mismatched"))
    }

    @Test("a scenario that check rejects is refused at start with its diagnostics: exit 2, no address")
    func badScenario() throws {
        let file = try Tools.temporaryFile("bad.yaml", contents: "version: 1\nname: x\nsessions:\n- greeting: 999 no\n")
        let server = try ReplayProcess([file, "--listen", "127.0.0.1:0"])
        let end = server.finish()
        #expect(server.address.isEmpty)
        #expect(end.status == 2)
        #expect(end.stderr.contains("bad.yaml:4:"), "\(end.stderr)")
    }

    @Test("implicit-TLS and plain sessions together need --listen-tls: exit 2 with one line")
    func mixedTLS() throws {
        let file = try Tools.temporaryFile("mixed.yaml", contents: """
            version: 1
            name: mixed
            sessions:
            - tls: implicit
              greeting: 220 a
              steps:
              - client: QUIT
                reply: 221 b
            - greeting: 220 a
              steps:
              - client: QUIT
                reply: 221 b
            """)
        let end = try ReplayProcess([file, "--listen", "127.0.0.1:0"]).finish()
        #expect(end.status == 2)
        #expect(end.stderr.contains("implicit TLS") && end.stderr.contains("--listen-tls"), "\(end.stderr)")
        #expect(end.stderr.split(separator: "\n").count == 1)
    }

    @Test("a port that cannot be bound: exit 2 naming the address")
    func portInUse() throws {
        let file = try Tools.temporaryFile("s.yaml", contents: Self.scenario)
        let first = try ReplayProcess([file, "--listen", "127.0.0.1:0"])
        let second = try ReplayProcess([file, "--listen", first.address])
        let end = second.finish()
        first.signal(SIGTERM)
        _ = first.finish()
        #expect(end.status == 2)
        #expect(end.stderr.contains(first.address) && end.stderr.contains("cannot listen"), "\(end.stderr)")
    }

    @Test("SIGINT with a session open: the client gets 421, the steps are interrupted, the report is completed, exit 1")
    func interrupted() throws {
        let file = try Tools.temporaryFile("s.yaml", contents: Self.scenario)
        let report = file + ".jsonl"
        let server = try ReplayProcess([file, "--listen", "127.0.0.1:0", "--report", report])
        // A client that says EHLO, then waits; it prints what it reads after the signal.
        let client = Process()
        client.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        client.arguments = ["python3", "-c", """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", \(server.port)), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"EHLO me\\r\\n")
            while True:
                line = f.readline()
                if line.startswith(b"250 "): break
            print("ready", flush=True)
            print(f.readline().decode().strip(), flush=True)
            """]
        let out = Pipe()
        client.standardOutput = out
        try client.run()
        let ready = out.fileHandleForReading.readData(ofLength: 6)
        #expect(String(decoding: ready, as: UTF8.self) == "ready\n")
        server.signal(SIGINT)
        client.waitUntilExit()
        let said = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let end = server.finish()
        #expect(said.hasPrefix("421 4.3.2"), "\(said)")
        #expect(end.status == 1)
        let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.contains("\"status\":\"interrupted\"") == true)
        #expect(lines.last?.contains("\"type\":\"summary\",\"passed\":false") == true)
    }

    @Test("a scripted session no client played fails the run")
    func unused() throws {
        let two = Self.scenario + "\n" + Self.scenario.split(separator: "\n").dropFirst(3).joined(separator: "\n")
        let file = try Tools.temporaryFile("two.yaml", contents: two)
        let server = try ReplayProcess([file, "--listen", "127.0.0.1:0", "--sessions", "1"])
        _ = try Self.client(port: server.port)
        let end = server.finish()
        #expect(end.status == 1)
        #expect(end.stderr.contains("1 session, 1 passed, 0 failed, 1 scripted session unused (one message (session 2))"), "\(end.stderr)")
    }
}
