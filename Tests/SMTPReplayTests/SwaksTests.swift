import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// swaks against replayed scenarios: STARTTLS that verifies the generated CA, AUTH, and a
/// recipient the script does not expect. swaks prints its own transcript, the server's lines
/// marked `<-` (`<~` once TLS is on, `<**`/`<~*` for errors).
@Suite(.enabled(if: Tools.available("swaks"), "swaks is not installed"))
struct SwaksTests {
    static let message = """
        Date: Mon, 01 Jan 2024 12:00:00 +0000
        Message-Id: <swaks-replay@example.com>
        From: alice@example.com
        To: bob@example.net
        Subject: swaks and replay

        Hello Bob.
        """

    static let submission = """
        version: 1
        name: submission over STARTTLS
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
            reply: '250 2.0.0 Ok: queued as 5C3'
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    static let plain = """
        version: 1
        name: plain delivery
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO client.example.test
            reply: |-
              250-mx.example.com
              250 8BITMIME
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: RCPT TO:<bob@example.net>
            reply: 250 2.1.5 Ok
          - client: DATA
            reply: 354 End data with <CR><LF>.<CR><LF>
          - message: |
        \(Tools.indented(Tools.indented(Tools.indented(message))))
            reply: '250 2.0.0 Ok: queued as 5C4'
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    /// swaks with a fixed EHLO name, envelope and message (swaks adds CRLF.CRLF to `--data`, so
    /// the file has no final line ending).
    static func swaks(port: Int, to: String = "bob@example.net", _ options: [String]) async throws -> Tools.Result {
        let data = try Tools.temporaryFile("message.eml", contents: message.replacingOccurrences(of: "\n", with: "\r\n"))
        return try await Tools.runAsync(["swaks", "--server", "127.0.0.1", "--port", String(port), "--helo", "client.example.test",
                                         "--from", "alice@example.com", "--to", to, "--data", "@" + data, "--timeout", "10"] + options)
    }

    @Test("STARTTLS verified against the generated CA, AUTH PLAIN and a message: every reply as scripted, over TLS after the 220")
    func starttlsAuth() async throws {
        let scenario = try Tools.scenario(Self.submission)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            client = try await Self.swaks(port: server.port, ["--tls", "--tls-verify", "--tls-ca-path", ca,
                                                              "--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland"])
        }
        #expect(client.status == 0, "\(client.stdout)\(client.stderr)")
        #expect(Tools.serverLines(client.stdout) == [
            "<-  220 smtp.example.com ESMTP",
            "<-  250-smtp.example.com",
            "<-  250-STARTTLS",
            "<-  250 ENHANCEDSTATUSCODES",
            "<-  220 2.0.0 Ready to start TLS",
            "<~  250-smtp.example.com",
            "<~  250-AUTH PLAIN LOGIN",
            "<~  250 ENHANCEDSTATUSCODES",
            "<~  235 2.7.0 Authentication successful",
            "<~  250 2.1.0 Ok",
            "<~  250 2.1.5 Ok",
            "<~  354 End data with <CR><LF>.<CR><LF>",
            "<~  250 2.0.0 Ok: queued as 5C3",
            "<~  221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(client.stdout.contains("=== TLS peer DN=\"/CN=localhost\""), "\(client.stdout)")
        #expect(outcome.passed, "\(outcome)")
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.map(\.status) == Array(repeating: .passed, count: 9))
        #expect(verdict.steps[3].actual == "AUTH PLAIN [REDACTED]")
        // swaks closes TLS without close_notify after the 221: not a failure of the session.
        #expect(verdict.notes.isEmpty, "\(verdict.notes)")
        let message = try #require(outcome.messages.first)
        #expect(message.mailFrom == "alice@example.com" && message.rcptTo == ["bob@example.net"])
        #expect(String(decoding: message.content, as: UTF8.self) == Self.message.replacingOccurrences(of: "\n", with: "\r\n") + "\r\n")
    }

    @Test("swaks that trusts only the system CAs refuses the generated certificate: exit 29, and the verdict fails at the second EHLO")
    func untrustedCertificate() async throws {
        let scenario = try Tools.scenario(Self.submission)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            client = try await Self.swaks(port: server.port, ["--tls", "--tls-verify"])
        }
        #expect(client.status == 29, "\(client.stdout)\(client.stderr)")
        #expect(client.stderr.contains("certificate verify failed"), "\(client.stderr)")
        #expect(!outcome.passed)
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.prefix(2).map(\.status) == [.passed, .passed])
        #expect(verdict.steps.dropFirst(2).allSatisfy { $0.status == .missing })
        #expect(verdict.notes.contains { $0.hasPrefix("the connection failed: handshakeFailed") }, "\(verdict.notes)")
    }

    @Test("a RCPT the script does not expect: swaks gets a 503 naming both lines and exits 24; the verdict names the step")
    func recipientDiffers() async throws {
        let scenario = try Tools.scenario(Self.plain)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            client = try await Self.swaks(port: server.port, to: "carol@example.org", [])
        }
        #expect(client.status == 24, "\(client.stdout)\(client.stderr)")  // swaks: no recipient accepted
        #expect(Tools.serverLines(client.stdout) == [
            "<-  220 mx.example.com ESMTP",
            "<-  250-mx.example.com",
            "<-  250 8BITMIME",
            "<-  250 2.1.0 Ok",
            "<** 503 5.5.1 smtptape: expected 'RCPT TO:<bob@example.net>' (step 3), got 'RCPT TO:<carol@example.org>'",
            "<-  221 2.0.0 Bye",  // the script's QUIT answers a QUIT out of turn
        ], "\(client.stdout)")
        #expect(!outcome.passed)
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.map(\.status) == [.passed, .passed, .mismatched, .missing, .missing, .passed])
        #expect(verdict.firstFailure?.step == 3)
        #expect(verdict.steps[2].actual == "RCPT TO:<carol@example.org>")
        #expect(verdict.steps[2].attempts == ["RCPT TO:<carol@example.org>"])
        #expect(outcome.description.contains("step 3 mismatched: expected 'RCPT TO:<bob@example.net>', got 'RCPT TO:<carol@example.org>'"),
                "\(outcome)")
        #expect(outcome.messages.isEmpty)
    }

    @Test("swaks --pipeline sends MAIL, both RCPTs and DATA in one batch after the EHLO reply advertised PIPELINING: passes, with no note")
    func pipelining() async throws {
        let yaml = Self.plain
            .replacingOccurrences(of: "250-mx.example.com\n      250 8BITMIME", with: "250-mx.example.com\n      250-PIPELINING\n      250 8BITMIME")
            .replacingOccurrences(of: "  - client: DATA", with: "  - client: RCPT TO:<carol@example.org>\n    reply: 250 2.1.5 Ok\n  - client: DATA")
        let scenario = try Tools.scenario(yaml)
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [scenario]) { server in
            client = try await Self.swaks(port: server.port, to: "bob@example.net,carol@example.org", ["--pipeline"])
        }
        #expect(client.status == 0, "\(client.stdout)\(client.stderr)")
        #expect(Tools.serverLines(client.stdout) == [
            "<-  220 mx.example.com ESMTP",
            "<-  250-mx.example.com",
            "<-  250-PIPELINING",
            "<-  250 8BITMIME",
            "<-  250 2.1.0 Ok",
            "<-  250 2.1.5 Ok",
            "<-  250 2.1.5 Ok",
            "<-  354 End data with <CR><LF>.<CR><LF>",
            "<-  250 2.0.0 Ok: queued as 5C4",
            "<-  221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(outcome.passed, "\(outcome)")
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps.map(\.status) == Array(repeating: .passed, count: 7))
        // The EHLO reply advertised PIPELINING: the batch is no conformance problem.
        #expect(verdict.notes.isEmpty, "\(verdict.notes)")
        #expect(outcome.messages.first?.rcptTo == ["bob@example.net", "carol@example.org"])
    }

    @Test("smtptape replay --listen-tls --tls-ca-out --keylog-out: swaks --tls-on-connect verifies the CA written out, every line over TLS, the key log filled",
          .enabled(if: FileManager.default.isExecutableFile(atPath: Tools.smtptape), "build the smtptape product first (swift build --build-tests)"))
    func commandLineImplicitTLS() async throws {
        let scenarioFile = try Tools.temporaryFile("plain.yaml", contents: Self.plain)
        let folder = URL(fileURLWithPath: scenarioFile).deletingLastPathComponent()
        let ca = folder.appendingPathComponent("ca.pem").path, keys = folder.appendingPathComponent("keys.log").path
        let replay = try BackgroundProcess([Tools.smtptape, "replay", scenarioFile, "--listen", "127.0.0.1:0", "--listen-tls",
                                            "--tls-ca-out", ca, "--keylog-out", keys, "--sessions", "1"])
        defer { replay.stop() }
        try await replay.waitUntil("the bound address") { stdout, _ in stdout.contains("\n") }
        let port = try #require(replay.stdout.split(separator: "\n").first?.split(separator: ":").last.flatMap { Int($0) })
        let client = try await Self.swaks(port: port, ["--tls-on-connect", "--tls-verify", "--tls-ca-path", ca])
        #expect(try await replay.wait() == 0, "\(replay.stderr)")
        #expect(client.status == 0, "\(client.stdout)\(client.stderr)")
        #expect(Tools.serverLines(client.stdout) == [
            "<~  220 mx.example.com ESMTP",
            "<~  250-mx.example.com",
            "<~  250 8BITMIME",
            "<~  250 2.1.0 Ok",
            "<~  250 2.1.5 Ok",
            "<~  354 End data with <CR><LF>.<CR><LF>",
            "<~  250 2.0.0 Ok: queued as 5C4",
            "<~  221 2.0.0 Bye",
        ], "\(client.stdout)")
        #expect(replay.stderr.hasPrefix("session 1 (127.0.0.1:"), "\(replay.stderr)")
        #expect(replay.stderr.contains("scenario 'plain delivery' session 1): passed, 6 steps, 1 message\nsmtptape: 1 session, 1 passed, 0 failed"),
                "\(replay.stderr)")
        // NSS key log lines for TLS 1.3, one set per connection, so a capture can be decrypted.
        let keyLog = try String(contentsOfFile: keys, encoding: .utf8)
        #expect(keyLog.contains("CLIENT_HANDSHAKE_TRAFFIC_SECRET ") && keyLog.contains("CLIENT_TRAFFIC_SECRET_0 "), "\(keyLog)")
        let permissions = try FileManager.default.attributesOfItem(atPath: keys)[.posixPermissions] as? Int
        #expect(permissions == 0o600)
    }
}
