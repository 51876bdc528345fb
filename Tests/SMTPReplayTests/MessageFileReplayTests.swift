import Foundation
import SMTPReplay
import SMTPScenario
import SMTPTapeTesting
import Testing

/// Replaying scenarios that keep a message beside them and replies a recording proxy sent.
@Suite struct MessageFileReplayTests {
    /// The message a real client sends is compared with the file beside the scenario; a reply the
    /// proxy sent reaches the client like any other.
    @Test(.enabled(if: Tools.available("python3"), "python3 is not installed"))
    func aRealClientMeetsTheMessageFileAndTheProxysReply() async throws {
        let file = try Tools.temporaryFile("beside.yaml", contents: """
            version: 1
            name: beside
            sessions:
            - greeting: 220 mx.example.com ESMTP
              steps:
              - client: EHLO app.example.com
                reply: 250 mx.example.com
              - client: MAIL FROM:<alice@example.com>
                reply: 250 2.1.0 Ok
              - client: RCPT TO:<bob@example.net>
                reply: 250 2.1.5 Ok
              - client: DATA
                reply: 354 go ahead
              - message-file: beside-s1-step5.eml
                match: exact
                reply: 451 4.4.1 proxy lost the server
                reply-by: proxy
              - client: RSET
                reply: 250 2.0.0 Ok
                reply-by: proxy
              - client: QUIT
                reply: 221 2.0.0 Bye
                reply-by: proxy
            """)
        let content = "Subject: kept beside\r\n\r\n" + String(repeating: "a line of the message\r\n", count: 2000)
        try Data(content.utf8).write(to: URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent("beside-s1-step5.eml"))
        let outcome = try await withReplayServer(scenarioFile: file) { server in
            let result = try await Tools.runAsync(["python3", "-c", """
                import smtplib, sys
                with smtplib.SMTP("\(server.host)", \(server.port), timeout=10) as c:
                    c.ehlo("app.example.com")
                    try:
                        c.sendmail("alice@example.com", ["bob@example.net"], sys.stdin.read())
                        print("sent")
                    except smtplib.SMTPDataError as e:
                        print(e.smtp_code)
                """], input: content.replacingOccurrences(of: "\r\n", with: "\n"))
            #expect(result.stdout == "451\n", "\(result.stderr)")
        }
        #expect(outcome.passed, "\(outcome)")
        #expect(outcome.messages.first.map { Array($0.content) } == Array(content.utf8))
    }

    /// A message the script expects is never refused as too large, however large its file.
    @Test func theSizeLimitMakesRoomForTheScriptsMessages() throws {
        let large = (64 << 20) + 1
        let scenario = Scenario(name: "large", sessions: [Scenario.Session(greeting: "220 hi", steps: [
            .command("DATA", reply: "354 go ahead"),
            Scenario.Step(kind: .message(Scenario.Message(content: Array(repeating: 0x61, count: large - 2) + [13, 10], match: .exact, file: "large.eml")),
                          reply: "250 ok"),
        ])])
        let server = try ReplayServer(scenarios: [scenario], configuration: ReplayConfiguration())
        #expect(server.configuration.options.limits.messageSize == large)
        let small = try ReplayServer(scenarios: [Scenario(name: "small", sessions: [Scenario.Session(greeting: "220 hi")])], configuration: ReplayConfiguration())
        #expect(small.configuration.options.limits.messageSize == 64 << 20)
    }
}
