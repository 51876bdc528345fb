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

    // MARK: STARTTLS and AUTH

    /// A submission server that wants STARTTLS, then AUTH with the mechanism it advertises.
    static func submission(advertising mechanisms: String, auth: String, refused: Bool = false) -> String {
        let delivery = refused ? """
              reply: 535 5.7.8 Authentication credentials invalid
            - client: QUIT
              reply: 221 2.0.0 Bye
            """ : """
              reply: 235 2.7.0 Authentication successful
            - client: MAIL FROM:<alice@example.com>
              reply: 250 2.1.0 Ok
            - client: RCPT TO:<bob@example.net>
              reply: 250 2.1.5 Ok
            - client: DATA
              reply: 354 End data with <CR><LF>.<CR><LF>
            - message: |
                From: alice@example.com
                To: bob@example.net
                Subject: over TLS

                sent after STARTTLS and AUTH
              reply: '250 2.0.0 Ok: queued as 7A1'
            - client: QUIT
              reply: 221 2.0.0 Bye
            """
        return """
            version: 1
            name: submission with STARTTLS and AUTH
            sessions:
            - greeting: 220 smtp.example.com ESMTP
              steps:
              - client: EHLO *
                match: wildcard
                reply: |-
                  250-smtp.example.com
                  250-STARTTLS
                  250 ENHANCEDSTATUSCODES
              - client: STARTTLS
                reply: 220 2.0.0 Ready to start TLS
                tls: start
              - client: EHLO *
                match: wildcard
                reply: |-
                  250-smtp.example.com
                  250-AUTH \(mechanisms)
                  250 ENHANCEDSTATUSCODES
            \(Tools.indented(auth))
            \(Tools.indented(delivery))
            """
    }

    /// smtplib: STARTTLS with a context that verifies the server against `caFile` (hostname
    /// included), `login()`, then one message. Prints each reply as `command: code text`; exits
    /// 4 when the login is refused.
    static func submit(port: Int, caFile: String, password: String = "wonderland") async throws -> Tools.Result {
        let script = """
            import smtplib, ssl, sys
            port, cafile, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
            message = "From: alice@example.com\\r\\nTo: bob@example.net\\r\\nSubject: over TLS\\r\\n\\r\\nsent after STARTTLS and AUTH\\r\\n"
            def show(name, reply):
                print(f"{name}: {reply[0]} {reply[1].decode()}")
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("client.example.test")
                show("starttls", client.starttls(context=ssl.create_default_context(cafile=cafile)))
                print("cipher:", client.sock.version())
                client.ehlo("client.example.test")
                try:
                    show("login", client.login("alice", password))
                except smtplib.SMTPAuthenticationError as error:
                    print(f"login refused: {error.smtp_code} {error.smtp_error.decode()}")
                    show("quit", client.quit())
                    sys.exit(4)
                print("sendmail:", client.sendmail("alice@example.com", ["bob@example.net"], message))
                show("quit", client.quit())
            """
        return try await Tools.runAsync(["python3", "-c", script, String(port), caFile, password])
    }

    /// How smtplib's `login()` speaks each mechanism: PLAIN with an initial response; LOGIN with
    /// the user name as the initial response, then the password after a `334`.
    static let mechanisms: [(advertised: String, steps: String)] = [
        ("PLAIN", """
            - client: AUTH PLAIN [REDACTED]
            """),
        ("LOGIN", """
            - client: AUTH LOGIN [REDACTED]
              reply: 334 UGFzc3dvcmQ6
            - auth: '[REDACTED]'
            """),
    ]

    @Test("STARTTLS verified against the generated CA, login() and a message: the script passes", arguments: [0, 1])
    func starttlsLogin(mechanism: Int) async throws {
        let (advertised, steps) = Self.mechanisms[mechanism]
        let scenario = try Tools.scenario(Self.submission(advertising: advertised, auth: steps))
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM, "a STARTTLS scenario makes a CA"))
            client = try await Self.submit(port: server.port, caFile: ca)
        }
        #expect(client.status == 0, "\(client.stderr)")
        #expect(client.stdout.split(separator: "\n").filter { !$0.hasPrefix("cipher:") } == [
            "starttls: 220 2.0.0 Ready to start TLS",
            "login: 235 2.7.0 Authentication successful",
            "sendmail: {}",
            "quit: 221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(client.stdout.contains("cipher: TLSv1."))
        #expect(outcome.passed, "\(outcome)")
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.allSatisfy { $0.status == .passed } && verdict.steps.count == (advertised == "LOGIN" ? 10 : 9))
        // The credentials matched the placeholder and stay out of the verdict.
        let auth = try #require(verdict.steps.first { $0.expected?.hasPrefix("AUTH") == true })
        #expect(auth.actual == "AUTH \(advertised) [REDACTED]")
        #expect(!"\(outcome)".contains("wonderland") && !"\(outcome)".contains("YWxpY2U"))
        let message = try #require(outcome.messages.first)
        #expect(String(decoding: message.content, as: UTF8.self) == "From: alice@example.com\r\nTo: bob@example.net\r\nSubject: over TLS\r\n\r\nsent after STARTTLS and AUTH\r\n")
        #expect(verdict.notes.isEmpty, "\(verdict.notes)")
    }

    @Test("a wrong password gets the scripted 535, smtplib reports the refusal and quits")
    func wrongPassword() async throws {
        let scenario = try Tools.scenario(Self.submission(advertising: "PLAIN", auth: Self.mechanisms[0].steps, refused: true))
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            client = try await Self.submit(port: server.port, caFile: ca, password: "not-the-password")
        }
        #expect(client.status == 4, "\(client.stdout) \(client.stderr)")
        #expect(client.stdout.split(separator: "\n").filter { !$0.hasPrefix("cipher:") } == [
            "starttls: 220 2.0.0 Ready to start TLS",
            "login refused: 535 5.7.8 Authentication credentials invalid",
            "quit: 221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(outcome.passed, "\(outcome)")
        #expect(outcome.messages.isEmpty)
    }
}
