import Foundation
import SMTPScenario
import SMTPTapeTesting
import Testing

/// RFC 3207 4.2: a command sent in plaintext behind STARTTLS, in the same write (the pattern of
/// CVE-2011-0411), must not run inside the TLS session. No client library does this on purpose,
/// so Python's socket and ssl modules play the client byte by byte.
@Suite(.enabled(if: Tools.available("python3"), "python3 is not installed"))
struct STARTTLSInjectionTests {
    static let scenario = """
        version: 1
        name: STARTTLS
        sessions:
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: EHLO client.example.test
            reply: |-
              250-mx.example.com
              250 STARTTLS
          - client: STARTTLS
            reply: 220 2.0.0 Ready to start TLS
            tls: start
          - client: EHLO client.example.test
            reply: 250 mx.example.com
          - client: MAIL FROM:<alice@example.com>
            reply: 250 2.1.0 Ok
          - client: QUIT
            reply: 221 2.0.0 Bye
        """

    @Test("MAIL FROM written behind STARTTLS in plaintext is dropped, not executed, and the verdict says so")
    func plaintextBehindSTARTTLS() async throws {
        let script = """
            import socket, ssl, sys
            sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            plain = sock.makefile("rb")
            def reply(stream):
                lines = []
                while not lines or lines[-1][3:4] == b"-":
                    lines.append(stream.readline())
                return b"".join(lines)
            print(reply(plain))
            sock.sendall(b"EHLO client.example.test\\r\\n"); print(reply(plain))
            sock.sendall(b"STARTTLS\\r\\nMAIL FROM:<mallory@example.com>\\r\\n"); print(reply(plain))
            tls = ssl.create_default_context(cafile=sys.argv[2]).wrap_socket(sock, server_hostname="127.0.0.1")
            encrypted = tls.makefile("rb")
            for line in [b"EHLO client.example.test", b"MAIL FROM:<alice@example.com>", b"QUIT"]:
                tls.sendall(line + b"\\r\\n"); print(reply(encrypted))
            """
        nonisolated(unsafe) var client = Tools.Result(status: -1, stdout: "", stderr: "")
        let outcome = try await withReplayServer(playing: [try Tools.scenario(Self.scenario)]) { server in
            let ca = try Tools.temporaryFile("ca.pem", contents: try #require(server.caPEM))
            client = try await Tools.runAsync(["python3", "-c", script, String(server.port), ca])
        }
        #expect(client.status == 0, "\(client.stderr)")
        #expect(client.stdout.split(separator: "\n") == [
            #"b'220 mx.example.com ESMTP\r\n'"#,
            #"b'250-mx.example.com\r\n250 STARTTLS\r\n'"#,
            #"b'220 2.0.0 Ready to start TLS\r\n'"#,
            #"b'250 mx.example.com\r\n'"#,
            #"b'250 2.1.0 Ok\r\n'"#,  // alice's MAIL inside TLS, mallory's never ran
            #"b'221 2.0.0 Bye\r\n'"#,
        ], "\(client.stdout)")
        #expect(outcome.passed, "\(outcome)")
        let verdict = try #require(outcome.verdicts.first)
        #expect(verdict.steps[3].actual == "MAIL FROM:<alice@example.com>")
        #expect(verdict.notes == ["the client sent 33 bytes after STARTTLS before TLS began: they were dropped, not executed (RFC 3207 4.2)"])
        #expect(outcome.messages.isEmpty)
    }
}
