import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// msmtp, configured the way people configure it (a file with `tls on`, `tls_trust_file`, `auth`),
/// against a replayed submission server. `msmtp --debug` marks the server's lines `<--`.
@Suite(.enabled(if: Tools.available("msmtp"), "msmtp is not installed"))
struct MsmtpTests {
    /// With From, Date and Message-ID present msmtp adds no header of its own.
    static let message = """
        Date: Mon, 01 Jan 2024 12:00:00 +0000
        Message-ID: <msmtp-replay@example.com>
        From: alice@example.com
        To: bob@example.net
        Subject: msmtp and replay

        Hello Bob.

        """

    static let submission = """
        version: 1
        name: msmtp submission
        sessions:
        - greeting: 220 smtp.example.com ESMTP
          steps:
          - client: EHLO client.example.test
            reply: |-
              250-smtp.example.com
              250-STARTTLS
              250 ENHANCEDSTATUSCODES
          - client: STARTTLS
            reply: 220 2.0.0 Ready to start TLS
            tls: start
          - client: EHLO client.example.test
            reply: |-
              250-smtp.example.com
              250-AUTH PLAIN LOGIN
              250 ENHANCEDSTATUSCODES
          - client: AUTH PLAIN [REDACTED]
            reply: 235 2.7.0 Authentication successful
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: DATA
            reply: 354 End data with <CR><LF>.<CR><LF>
          - message: |
        \(Tools.indented(Tools.indented(Tools.indented(message))))
            reply: '250 2.0.0 Ok: queued as 8E5'
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    /// An msmtp configuration file for the replay server (readable by its owner only: msmtp
    /// refuses a file with a password that others can read).
    static func configuration(port: Int, caFile: String) throws -> String {
        let path = try Tools.temporaryFile("msmtprc", contents: """
            defaults
            tls on
            tls_starttls on
            tls_trust_file \(caFile)

            account replay
            host 127.0.0.1
            port \(port)
            domain client.example.test
            from alice@example.com
            auth plain
            user alice
            password wonderland

            account default : replay

            """)
        try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: path)
        return path
    }

    @Test("msmtp with a configuration file: STARTTLS trusting the generated CA, AUTH PLAIN, a message")
    func configured() async throws {
        let scenario = try Tools.scenario(Self.submission)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            let file = try Self.configuration(port: server.port, caFile: ca)
            client = try await Tools.runAsync(["msmtp", "-C", file, "--debug", "bob@example.net"], input: Self.message)
        }
        #expect(client.status == 0, "\(client.stdout)\(client.stderr)")
        #expect(Tools.serverLines(client.stdout) == [
            "<-- 220 smtp.example.com ESMTP",
            "<-- 250-smtp.example.com",
            "<-- 250-STARTTLS",
            "<-- 250 ENHANCEDSTATUSCODES",
            "<-- 220 2.0.0 Ready to start TLS",
            "<-- 250-smtp.example.com",
            "<-- 250-AUTH PLAIN LOGIN",
            "<-- 250 ENHANCEDSTATUSCODES",
            "<-- 235 2.7.0 Authentication successful",
            "<-- 250 2.1.0 Ok",
            "<-- 250 2.1.5 Ok",
            "<-- 354 End data with <CR><LF>.<CR><LF>",
            "<-- 250 2.0.0 Ok: queued as 8E5",
            "<-- 221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(outcome.passed, "\(outcome)")
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.map(\.status) == Array(repeating: .passed, count: 9))
        #expect(verdict.notes.isEmpty, "\(verdict.notes)")
        let message = try #require(outcome.messages.first)
        #expect(String(decoding: message.content, as: UTF8.self) == Self.message.replacingOccurrences(of: "\n", with: "\r\n"))
    }
}
