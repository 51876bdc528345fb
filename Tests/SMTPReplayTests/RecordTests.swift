import Foundation
import Testing

/// `smtptape record` between real clients and real servers, then `smtptape replay` of what it
/// recorded to the same clients.
@Suite(.enabled(if: Tools.available("python3") && Tools.python(has: "aiosmtpd") && Tools.available("openssl"),
                "python3 with aiosmtpd, and openssl, are needed"))
struct RecordTests {
    static func folder() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("record-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    /// smtplib: STARTTLS (verifying `ca`), AUTH with `mechanism`, one message, QUIT. Prints every
    /// reply it read (its own debug log), then `exit N`.
    static func smtplib(port: Int, ca: String, mechanism: String = "LOGIN", password: String = "s3cret") throws -> Tools.Result {
        try Tools.run(["python3", "-c", """
            import smtplib, ssl, sys
            c = smtplib.SMTP(timeout=10, local_hostname="client.example.test")
            c.set_debuglevel(1)
            c._host = "127.0.0.1"  # for the certificate check (connect() does not set it)
            status = 0
            try:
                c.connect("127.0.0.1", \(port))
                c.ehlo()
                c.starttls(context=ssl.create_default_context(cafile="\(ca)"))
                c.ehlo()
                c.esmtp_features["auth"] = "\(mechanism)"
                c.login("alice", "\(password)")
                c.sendmail("alice@example.com", ["bob@example.net"],
                           "Subject: quarterly report\\r\\nDate: Mon, 01 Jan 2024 10:00:00 +0000\\r\\n\\r\\n.dots\\r\\nfigures\\r\\n")
                c.quit()
            except smtplib.SMTPException as e:
                status = 3
            print("exit", status)
            """])
    }

    /// The server's lines as the client logged them.
    static func serverLines(_ result: Tools.Result) -> [String] {
        result.stderr.split(separator: "\n").filter { $0.hasPrefix("reply: ") }.map(String.init)
    }

    static func files(_ folder: String, _ suffix: String) throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(suffix) }.sorted().map { folder + "/" + $0 }
    }

    @Test("smtplib (STARTTLS, AUTH LOGIN) through the proxy to aiosmtpd, then against the replay of the recording: the client sees the same server")
    func roundTripWithSTARTTLSAndAUTH() throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "--upstream-ca", cert, "-o", dir,
                                       "--listen", "127.0.0.1:0", "--sessions", "1", "--tls-ca-out", dir + "/proxy-ca.pem", "--transcript"],
                                      command: "record")
        let recorded = try Self.smtplib(port: proxy.port, ca: dir + "/proxy-ca.pem")
        let proxyEnd = proxy.finish()
        #expect(proxyEnd.status == 0, "\(proxyEnd.stderr)")
        #expect(recorded.stdout == "exit 0\n", "\(recorded.stderr)")
        let scenario = try #require(try Self.files(dir, ".yaml").first)
        let yaml = try String(contentsOfFile: scenario, encoding: .utf8)
        #expect(yaml.contains("tls: start") && yaml.contains("auth: '[REDACTED]'") && yaml.contains("proxy: 127.0.0.1:\(upstream.port)"), "\(yaml)")
        #expect(try Tools.run([ReplayProcess.executable.path, "check", scenario]).status == 0)
        // The transcript shows the dialogue inside TLS, in the clear.
        let transcript = try String(contentsOfFile: try #require(try Self.files(dir, ".txt").first), encoding: .utf8)
        #expect(transcript.contains("C: mail FROM:<alice@example.com> size=")) // smtplib's spelling

        let replay = try ReplayProcess([scenario, "--listen", "127.0.0.1:0", "--sessions", "1", "--tls-ca-out", dir + "/replay-ca.pem"])
        let replayed = try Self.smtplib(port: replay.port, ca: dir + "/replay-ca.pem")
        let replayEnd = replay.finish()
        #expect(replayed.stdout == recorded.stdout)
        #expect(Self.serverLines(replayed) == Self.serverLines(recorded))
        #expect(Self.serverLines(recorded).count >= 10)
        #expect(replayEnd.status == 0, "\(replayEnd.stderr)")
    }

    @Test("no file the proxy wrote, nor its output, holds the password in any form", arguments: ["LOGIN", "PLAIN"])
    func secretsStayHidden(mechanism: String) throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "--upstream-ca", cert, "-o", dir, "--listen", "127.0.0.1:0",
                                       "--sessions", "1", "--tls-ca-out", dir + "/ca.pem", "--transcript"], command: "record")
        let client = try Self.smtplib(port: proxy.port, ca: dir + "/ca.pem", mechanism: mechanism)
        let end = proxy.finish()
        #expect(client.stdout == "exit 0\n")
        let forms = ["s3cret", "czNjcmV0", "AGFsaWNlAHMzY3JldA", "YWxpY2U", Data("user=alice\u{1}auth=Bearer s3cret\u{1}\u{1}".utf8).base64EncodedString()]
        var texts = [("stdout", end.stdout), ("stderr", end.stderr)]
        for file in try FileManager.default.contentsOfDirectory(atPath: dir) {
            texts.append((file, String(decoding: try Data(contentsOf: URL(fileURLWithPath: dir + "/" + file)), as: UTF8.self)))
        }
        #expect(texts.count >= 5)
        for (name, text) in texts {
            for form in forms { #expect(!text.contains(form), "\(name) holds \(form)") }
        }
    }
}
