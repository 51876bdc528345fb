import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// Python's smtplib against replayed scenarios, through SMTPTapeTesting.
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct SmtplibTests {
    static let plain = """
        version: 1
        name: plain delivery
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx.example.com
              250-PIPELINING
              250 8BITMIME
          - client: MAIL FROM:<alice@example.com>*
            match: wildcard
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: DATA
            reply: 354 End data with <CR><LF>.<CR><LF>
          - message: |
              Subject: hello
              Date: Mon, 01 Jan 2024 00:00:00 +0000

              .a line that starts with a dot
              body
            reply: '250 2.0.0 Ok: queued as 4F2'
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    /// Sends one message with smtplib; prints the server's replies it saw.
    static func send(port: Int, from: String = "alice@example.com", to: String = "bob@example.net") async throws -> Tools.Result {
        let script = """
            import smtplib, sys
            message = "Subject: hello\\r\\nDate: Tue, 02 Jan 2024 10:00:00 +0000\\r\\n\\r\\n.a line that starts with a dot\\r\\nbody\\r\\n"
            with smtplib.SMTP("127.0.0.1", \(port), timeout=10) as client:
                try:
                    print(client.sendmail("\(from)", ["\(to)"], message))
                except smtplib.SMTPException as error:
                    print("refused:", error)
                    sys.exit(3)
            """
        return try await Tools.runAsync(["python3", "-c", script])
    }

    @Test("a client that follows the script passes, and its message and envelope are kept")
    func follows() async throws {
        let scenario = try Tools.scenario(Self.plain)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            client = try await Self.send(port: server.port)
        }
        #expect(client.status == 0, "\(client.stderr)")
        #expect(outcome.passed, "\(outcome)")
        let message = try #require(outcome.messages.first)
        #expect(message.mailFrom == "alice@example.com" && message.rcptTo == ["bob@example.net"])
        // smtplib dot-stuffs; the server unstuffs: the content is what the client meant.
        #expect(String(decoding: message.content, as: UTF8.self).contains("\r\n.a line that starts with a dot\r\n"))
        #expect(message.replyCode == 250)
    }

    @Test("a client that strays gets a 503 naming both lines, and the verdict says which step and what was closest")
    func strays() async throws {
        let scenario = try Tools.scenario(Self.plain)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            client = try await Self.send(port: server.port, to: "carol@example.org")
        }
        #expect(client.status == 3)
        #expect(client.stdout.contains("503") && client.stdout.contains("RCPT TO:<bob@example.net>") && client.stdout.contains("carol@example.org"),
                "\(client.stdout)")
        #expect(!outcome.passed)
        let verdict = try #require(outcome.verdicts.first)
        let rcpt = try #require(verdict.steps.first { $0.step == 3 })
        #expect(rcpt.status == .mismatched)
        #expect(rcpt.actual == "rcpt TO:<carol@example.org>")  // as smtplib spells it
        #expect(verdict.steps.first { $0.step == 5 }?.status == .missing)
    }
}
