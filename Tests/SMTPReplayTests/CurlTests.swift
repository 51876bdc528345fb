import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// curl's SMTP client against replayed scenarios: `smtp://` with STARTTLS required, and `smtps://`
/// (TLS from the first byte). `curl -v` marks the server's lines `<`.
@Suite(.enabled(if: Tools.available("curl"), "curl is not installed"))
struct CurlTests {
    /// Written with LF; `--crlf` sends CRLF.
    static let message = """
        Date: Mon, 01 Jan 2024 12:00:00 +0000
        Message-Id: <curl-replay@example.com>
        From: alice@example.com
        To: bob@example.net
        Subject: curl and replay

        Hello Bob.

        """

    /// The dialogue after the greeting (and after TLS, when there is TLS).
    static let delivery = """
        - client: MAIL FROM:<alice@example.com>
          reply: 250 2.1.0 Ok
        - client: RCPT TO:<bob@example.net>
          reply: 250 2.1.5 Ok
        - client: DATA
          reply: 354 End data with <CR><LF>.<CR><LF>
        - message: |
        \(Tools.indented(Tools.indented(message)))
          reply: '250 2.0.0 Ok: queued as 6D4'
        - client: QUIT
          reply: 221 2.0.0 Bye
        """

    static let starttls = """
        version: 1
        name: STARTTLS required
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO client.example.test
            reply: |-
              250-mx.example.com
              250-STARTTLS
              250 ENHANCEDSTATUSCODES
          - client: STARTTLS
            reply: 220 2.0.0 Ready to start TLS
            tls: start
          - client: EHLO client.example.test
            reply: |-
              250-mx.example.com
              250 ENHANCEDSTATUSCODES
        \(Tools.indented(delivery))
        """

    static let implicit = """
        version: 1
        name: SMTPS
        sessions:
        - tls: implicit
          greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO client.example.test
            reply: |-
              250-mx.example.com
              250 ENHANCEDSTATUSCODES
        \(Tools.indented(delivery))
        """

    /// curl with the EHLO name in the URL's path, trusting `caFile` only.
    static func curl(_ url: String, caFile: String, _ options: [String] = []) async throws -> Tools.Result {
        let file = try Tools.temporaryFile("message.txt", contents: message)
        return try await Tools.runAsync(["curl", "-sS", "-v", "--max-time", "10", "--crlf", url + "/client.example.test",
                                         "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.net",
                                         "--upload-file", file, "--cacert", caFile] + options)
    }

    func expectDelivered(_ outcome: ReplayOutcome, steps: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(outcome.passed, "\(outcome)", sourceLocation: sourceLocation)
        let verdict = try #require(outcome.verdicts.first, sourceLocation: sourceLocation)
        #expect(verdict.steps.map(\.status) == Array(repeating: .passed, count: steps), sourceLocation: sourceLocation)
        #expect(verdict.notes.isEmpty, "\(verdict.notes)", sourceLocation: sourceLocation)
        let message = try #require(outcome.messages.first, sourceLocation: sourceLocation)
        #expect(message.rcptTo == ["bob@example.net"], sourceLocation: sourceLocation)
        #expect(String(decoding: message.content, as: UTF8.self) == Self.message.replacingOccurrences(of: "\n", with: "\r\n"),
                sourceLocation: sourceLocation)
    }

    @Test("smtp:// with --ssl-reqd: STARTTLS, the certificate verified against the generated CA, a message")
    func starttlsRequired() async throws {
        let scenario = try Tools.scenario(Self.starttls)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            client = try await Self.curl("smtp://127.0.0.1:\(server.port)", caFile: ca, ["--ssl-reqd"])
        }
        #expect(client.status == 0, "\(client.stderr)")
        #expect(Tools.serverLines(client.stderr) == [
            "< 220 mx.example.com ESMTP",
            "< 250-mx.example.com",
            "< 250-STARTTLS",
            "< 250 ENHANCEDSTATUSCODES",
            "< 220 2.0.0 Ready to start TLS",
            "< 250-mx.example.com",
            "< 250 ENHANCEDSTATUSCODES",
            "< 250 2.1.0 Ok",
            "< 250 2.1.5 Ok",
            "< 354 End data with <CR><LF>.<CR><LF>",
            "< 250 2.0.0 Ok: queued as 6D4",
        ], "\(client.stderr)")
        #expect(client.stderr.contains("SSL certificate verify ok."), "\(client.stderr)")
        try expectDelivered(outcome, steps: 8)
    }

    @Test("smtps:// against a tls: implicit session: TLS from the first byte, then the dialogue")
    func implicitTLS() async throws {
        let scenario = try Tools.scenario(Self.implicit)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            client = try await Self.curl("smtps://127.0.0.1:\(server.port)", caFile: ca)
        }
        #expect(client.status == 0, "\(client.stderr)")
        #expect(Tools.serverLines(client.stderr) == [
            "< 220 mx.example.com ESMTP",
            "< 250-mx.example.com",
            "< 250 ENHANCEDSTATUSCODES",
            "< 250 2.1.0 Ok",
            "< 250 2.1.5 Ok",
            "< 354 End data with <CR><LF>.<CR><LF>",
            "< 250 2.0.0 Ok: queued as 6D4",
        ], "\(client.stderr)")
        #expect(client.stderr.contains("SSL certificate verify ok."), "\(client.stderr)")
        try expectDelivered(outcome, steps: 6)
    }

    @Test("smtp:// with --ssl-reqd against a server that does not offer STARTTLS: curl refuses to go on in the clear")
    func starttlsMissing() async throws {
        let scenario = try Tools.scenario(Self.implicit.replacingOccurrences(of: "- tls: implicit\n  greeting", with: "- greeting"))
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            #expect(server.caPEM == nil, "no TLS in the script, no certificate")
            client = try await Self.curl("smtp://127.0.0.1:\(server.port)", caFile: "/dev/null", ["--ssl-reqd"])
        }
        #expect(client.status == 64, "\(client.stderr)")  // CURLE_USE_SSL_FAILED
        #expect(!outcome.passed)
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.first?.status == .passed)
        #expect(verdict.steps.dropFirst().allSatisfy { $0.status == .missing })
    }
}
