import Foundation
import Testing

/// A STARTTLS session captured with its key log (`Captures/`, made by swaks against aiosmtpd,
/// TLS 1.2): `extract --keylog` gives the whole dialogue, TLS included, and `replay` of it gives the
/// same client the same server, line for line, over TLS.
@Suite(.enabled(if: Tools.available("swaks"), "swaks is not installed"),
       .enabled(if: FileManager.default.isExecutableFile(atPath: Tools.smtptape), "build the smtptape product first (swift build --build-tests)"))
struct TLSCaptureReplayTests {
    static let name = "swaks-aiosmtpd-tls12-aes128gcm-starttls"

    @Test("a decrypted STARTTLS capture, extracted and replayed: swaks sees the same server it saw when the capture was made")
    func extractedWithTheKeyLogAndReplayed() throws {
        let captures = Tools.repository.appendingPathComponent("Captures")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tls-replay-\(UUID().uuidString)").path
        let extract = try Tools.run([Tools.smtptape, "extract", "--keylog", captures.appendingPathComponent(Self.name + ".keys").path,
                                     captures.appendingPathComponent(Self.name + ".pcap").path, "-o", folder])
        #expect(extract.status == 0, "\(extract.stderr)")
        let scenario = try #require(extract.stdout.split(separator: "\n").first.map(String.init))
        let yaml = try String(contentsOfFile: scenario, encoding: .utf8)
        #expect(yaml.contains("tls: start") && !yaml.contains("incomplete"), "the scenario goes on inside TLS")

        // The client log of the capture: the server's lines as swaks saw them, in the clear and in TLS.
        let logged = Tools.serverLines(try String(contentsOf: captures.appendingPathComponent(Self.name + ".client.log"), encoding: .utf8))
        #expect(logged.contains { $0.hasPrefix("<~  250") }, "the log has lines from inside TLS")

        // The message exactly as the capture script sent it (swaks adds the final CRLF . CRLF).
        let eml = try String(contentsOf: captures.appendingPathComponent("messages/\(Self.name).eml"), encoding: .utf8)
        let data = try Tools.temporaryFile("tls-replay.eml", contents: eml.hasSuffix("\n") ? String(eml.dropLast()) : eml)
        let replay = try ReplayProcess([scenario, "--listen", "127.0.0.1:0", "--sessions", "1"])
        let swaks = try Tools.run(["swaks", "--server", "127.0.0.1", "--port", String(replay.port), "--tls", "--tls-protocol", "tlsv1_2",
                                   "--helo", "client.example.test", "--from", "alice@example.com", "--to", "bob@example.net",
                                   "--data", "@" + data, "--timeout", "10"])
        let end = replay.finish()
        #expect(swaks.status == 0, "\(swaks.stdout)\(swaks.stderr)")
        #expect(Tools.serverLines(swaks.stdout) == logged)
        #expect(end.status == 0, "the verdict passes: \(end.stderr)")
    }

    @Test("--keylog on the command line: a pcapng's secrets block needs no flag, a missing key log exits 2, malformed lines are warnings with their number")
    func keyLogOnTheCommandLine() throws {
        let captures = Tools.repository.appendingPathComponent("Captures")
        let dsb = captures.appendingPathComponent("smtplib-aiosmtpd-tls13-chacha-starttls-auth-dsb.pcapng").path
        let embedded = try Tools.run([Tools.smtptape, "transcript", dsb, "--color", "never"])
        #expect(embedded.status == 0)
        #expect(embedded.stdout.contains("-- TLS 1.3, TLS_CHACHA20_POLY1305_SHA256, decrypted with the key log"))
        #expect(embedded.stdout.contains("C: AUTH PLAIN [REDACTED]") && embedded.stdout.contains("C: quit"))

        let pcap = captures.appendingPathComponent(Self.name + ".pcap").path
        let missing = try Tools.run([Tools.smtptape, "transcript", "--keylog", "/nonexistent/keys.txt", pcap])
        #expect(missing.status == 2)
        #expect(missing.stderr == "smtptape: /nonexistent/keys.txt: cannot read the key log (No such file or directory)\n")

        let keys = try Tools.temporaryFile("bad.keys", contents: "# a comment\nnot a key log line\nCLIENT_RANDOM 00 11\n")
        let bad = try Tools.run([Tools.smtptape, "transcript", "--keylog", keys, pcap])
        #expect(bad.status == 0)
        #expect(bad.stderr.contains("smtptape: warning: \(keys):2: not a key log line (expected LABEL CLIENT_RANDOM SECRET); line skipped"))
        #expect(bad.stderr.contains("smtptape: warning: \(keys):3: CLIENT_RANDOM: the client random is not 32 bytes of hex; line skipped"))
        // No key for this session: said once, on standard error and in the transcript; nothing after TLS is shown.
        #expect(bad.stderr.contains("session 1: cannot decrypt TLS: the key log has no secrets for client random "))
        #expect(bad.stdout.contains("-- cannot decrypt TLS: the key log has no secrets for client random "))
        #expect(!bad.stdout.contains("C: MAIL"))
    }
}
