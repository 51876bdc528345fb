import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// The README's SMTPTapeTesting example, as written there, with a `Mailer` that stands for the
/// user's code (it sends through Python's smtplib).
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct ReadmeExampleTests {
    struct MailerError: Error { var message: String }

    struct Mailer {
        var host: String
        var port: Int

        func sendWelcome(to recipient: String) async throws {
            let result = try await Tools.runAsync(["python3", "-c", """
                import smtplib
                with smtplib.SMTP("\(host)", \(port), timeout=10) as c:
                    c.ehlo("app.example.com")
                    c.sendmail("welcome@example.com", ["\(recipient)"], "Subject: Welcome\\r\\n\\r\\nHello!\\r\\n")
                """])
            if result.status != 0 { throw MailerError(message: result.stderr) }
        }
    }

    @Test func welcomeMailIsSentOnce() async throws {
        let file = try Tools.temporaryFile("welcome.yaml", contents: """
            version: 1
            name: welcome
            sessions:
            - greeting: 220 mx.example.com ESMTP
              steps:
              - client: EHLO app.example.com
                reply: 250 mx.example.com
              - client: MAIL FROM:<welcome@example.com>
                reply: 250 2.1.0 Ok
              - client: RCPT TO:<bob@example.net>
                reply: 250 2.1.5 Ok
              - client: DATA
                reply: 354 go ahead
              - message: |
                  Subject: Welcome

                  Hello!
                reply: 250 2.0.0 queued
              - client: QUIT
                reply: 221 2.0.0 Bye
            """)
        // From here on, the README's example.
        let outcome = try await withReplayServer(scenarioFile: file) { server in
            try await Mailer(host: server.host, port: server.port).sendWelcome(to: "bob@example.net")
        }
        #expect(outcome.passed, "\(outcome)")
        #expect(outcome.messages.count == 1)
        #expect(outcome.messages[0].rcptTo == ["bob@example.net"])
    }
}
