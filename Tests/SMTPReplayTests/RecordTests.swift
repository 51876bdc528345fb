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

    /// Runs the proxy to `upstream` for one session driven by `client` (a Python script given the
    /// proxy's port); returns the proxy's ending, the client's output and the scenario written.
    static func recordOne(upstream: Int, client script: String, interrupt: Bool = false) throws -> (ReplayProcess.Ending, Tools.Result, String) {
        let dir = try folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream)", "-o", dir, "--listen", "127.0.0.1:0", "--sessions", "1"], command: "record")
        var client = Tools.Result(status: -1, stdout: "", stderr: "")
        if interrupt {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", "-c", script, String(proxy.port)]
            let out = Pipe()
            process.standardOutput = out
            try process.run()
            let ready = String(decoding: out.fileHandleForReading.readData(ofLength: 6), as: UTF8.self)
            #expect(ready == "ready\n")
            proxy.signal(SIGINT)
            process.waitUntilExit()
            client.stdout = ready + String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            client.status = process.terminationStatus
        } else {
            client = try Tools.run(["python3", "-c", script, String(proxy.port)])
        }
        let end = proxy.finish()
        let scenario = try #require(try files(dir, ".yaml").first, "no scenario written: \(end.stderr)")
        #expect(try Tools.run([ReplayProcess.executable.path, "check", scenario]).status == 0, "check rejects \(scenario)")
        return (end, client, try String(contentsOfFile: scenario, encoding: .utf8))
    }

    @Test("the server refuses the connection: the client gets the proxy's 421, and the scenario says why")
    func upstreamRefuses() throws {
        let port = try PythonServer.freePort()
        let (end, client, yaml) = try Self.recordOne(upstream: port, client: """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            print(s.makefile("rb").readline().decode().strip())
            """)
        #expect(end.status == 0)
        #expect(client.stdout.hasPrefix("421 4.4.1 smtptape: the server 127.0.0.1:\(port) cannot be reached"), "\(client.stdout)")
        #expect(yaml.contains("greeting: '421 4.4.1 smtptape: the server 127.0.0.1:\(port) cannot be reached'"), "\(yaml)")
        #expect(yaml.contains("could not be reached"))
        #expect(yaml.contains("greeting-by: proxy"))
    }

    @Test("the server resets the connection during DATA: the client gets the proxy's 421, the scenario keeps what was answered")
    func upstreamResetsInData() throws {
        let upstream = try PythonServer(PythonServer.resetInData)
        defer { upstream.stop() }
        let (_, client, yaml) = try Self.recordOne(upstream: upstream.port, client: """
            import smtplib, sys
            try:
                with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=10) as c:
                    c.sendmail("a@example.com", ["b@example.net"], "Subject: x\\r\\n\\r\\n" + "line\\r\\n" * 2000)
            except smtplib.SMTPResponseException as e:
                print(e.smtp_code, e.smtp_error.decode())
            except smtplib.SMTPServerDisconnected as e:
                print("disconnected")
            """)
        #expect(client.stdout.hasPrefix("421 4.4.2 smtptape: the connection to the server was lost") || client.stdout == "disconnected\n", "\(client.stdout)")
        #expect(yaml.contains("the connection before its last word; the client got the proxy's 421"), "\(yaml)")
        #expect(yaml.contains("reply: 354 go ahead"))
    }

    @Test("the client vanishes during DATA: the scenario keeps what was answered and says the message was cut short")
    func clientVanishesInData() throws {
        let upstream = try PythonServer(PythonServer.plainAiosmtpd)
        defer { upstream.stop() }
        let (_, _, yaml) = try Self.recordOne(upstream: upstream.port, client: """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            f = s.makefile("rb")
            def reply():
                while True:
                    line = f.readline()
                    if line[3:4] != b"-": return line
            reply()
            for line in [b"EHLO me", b"MAIL FROM:<a@example.com>", b"RCPT TO:<b@example.net>", b"DATA"]:
                s.sendall(line + b"\\r\\n"); reply()
            s.sendall(b"Subject: half\\r\\n\\r\\nand then noth")
            s.close()
            """)
        #expect(yaml.contains("client: DATA") && yaml.contains("reply: 354"), "\(yaml)")
        #expect(yaml.contains("incomplete:"), "\(yaml)")
    }

    @Test("SIGINT with a session open: the session is written, cut short, and says so")
    func interrupted() throws {
        let upstream = try PythonServer(PythonServer.plainAiosmtpd)
        defer { upstream.stop() }
        let (end, client, yaml) = try Self.recordOne(upstream: upstream.port, client: """
            import socket, sys
            s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
            f = s.makefile("rb")
            f.readline()
            s.sendall(b"EHLO me\\r\\n")
            while f.readline()[3:4] == b"-": pass
            print("ready", flush=True)
            print(f.readline().decode().strip() or "closed")
            """, interrupt: true)
        #expect(end.status == 0)
        #expect(client.stdout == "ready\nclosed\n")
        #expect(yaml.contains("the recording stopped (SIGINT or SIGTERM) with the connection open"), "\(yaml)")
        #expect(yaml.contains("client: EHLO me"))
    }

    /// A scenario's YAML without what differs between two recordings of one dialogue: its name,
    /// description, origin and the measured think times.
    static func dialogueOnly(_ yaml: String) -> [String] {
        var lines: [String] = []
        var inOrigin = false
        for line in yaml.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("origin:") { inOrigin = true; continue }
            if inOrigin, line.hasPrefix("  ") { continue }
            inOrigin = false
            if line.hasPrefix("name:") || line.hasPrefix("description:") || line.contains("recorded-delay:") || line.contains("recorded-greeting-delay:") { continue }
            lines.append(String(line))
        }
        return lines
    }

    @Test("--pcap writes the plaintext dialogue (behind TLS): extract of that pcap gives the recording's scenario")
    func pcapGivesTheSameScenario() throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "--upstream-ca", cert, "-o", dir + "/recorded", "--listen", "127.0.0.1:0",
                                       "--sessions", "1", "--tls-ca-out", dir + "/ca.pem", "--pcap", dir + "/plain.pcap", "--show-secrets"], command: "record")
        #expect(try Self.smtplib(port: proxy.port, ca: dir + "/ca.pem").stdout == "exit 0\n")
        #expect(proxy.finish().status == 0)
        let extracted = try Tools.run([ReplayProcess.executable.path, "extract", "--show-secrets", "-o", dir + "/extracted", dir + "/plain.pcap"])
        #expect(extracted.status == 0, "\(extracted.stderr)")
        let recorded = try String(contentsOfFile: try #require(try Self.files(dir + "/recorded", ".yaml").first), encoding: .utf8)
        let fromPcap = try String(contentsOfFile: try #require(try Self.files(dir + "/extracted", ".yaml").first), encoding: .utf8)
        #expect(Self.dialogueOnly(fromPcap) == Self.dialogueOnly(recorded), "\(fromPcap)\n---\n\(recorded)")
        #expect(recorded.contains("AGFsaWNl") || recorded.contains("YWxpY2U"), "--show-secrets keeps the credentials")
        // Without --show-secrets, --pcap is refused, and says why.
        let refused = try Tools.run([ReplayProcess.executable.path, "record", "--upstream", "127.0.0.1:1", "-o", dir, "--pcap", dir + "/x.pcap"])
        #expect(refused.status == 64 && refused.stderr.contains("AUTH credentials included"), "\(refused.stderr)")
    }

    @Test("--tls passthrough: recorded up to STARTTLS, the client's TLS goes to the server untouched")
    func passthrough() throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "-o", dir, "--listen", "127.0.0.1:0", "--sessions", "1", "--tls", "passthrough"],
                                      command: "record")
        // The client verifies the server's own certificate: the proxy is not in the TLS.
        #expect(try Self.smtplib(port: proxy.port, ca: cert).stdout == "exit 0\n")
        #expect(proxy.finish().status == 0)
        let scenario = try #require(try Self.files(dir, ".yaml").first)
        let yaml = try String(contentsOfFile: scenario, encoding: .utf8)
        #expect(yaml.contains("tls: start") && yaml.contains("continued under TLS after STARTTLS and could not be read"), "\(yaml)")
        #expect(!yaml.contains("MAIL FROM") && !yaml.contains("mail FROM"))
        #expect(try Tools.run([ReplayProcess.executable.path, "check", scenario]).status == 0)
    }

    @Test("implicit TLS on both legs (SMTPS): recorded in the clear, and replayed on a TLS listener")
    func implicitTLS() throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key, "implicit"])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "--upstream-tls", "--upstream-ca", cert, "--listen-tls", "-o", dir,
                                       "--listen", "127.0.0.1:0", "--sessions", "1", "--tls-ca-out", dir + "/ca.pem"], command: "record")
        let client = """
            import smtplib, ssl, sys
            context = ssl.create_default_context(cafile=sys.argv[2])
            with smtplib.SMTP_SSL("127.0.0.1", int(sys.argv[1]), context=context, timeout=10, local_hostname="client.example.test") as c:
                c.login("alice", "s3cret")
                c.sendmail("alice@example.com", ["bob@example.net"], "Subject: smtps\\r\\n\\r\\nhi\\r\\n")
            print("sent")
            """
        let first = try Tools.run(["python3", "-c", client, String(proxy.port), dir + "/ca.pem"])
        #expect(first.stdout == "sent\n", "\(first.stderr)")
        #expect(proxy.finish().status == 0)
        let scenario = try #require(try Self.files(dir, ".yaml").first)
        let yaml = try String(contentsOfFile: scenario, encoding: .utf8)
        #expect(yaml.contains("tls: implicit") && yaml.contains("Subject: smtps"), "\(yaml)")
        let replay = try ReplayProcess([scenario, "--listen", "127.0.0.1:0", "--sessions", "1", "--tls-ca-out", dir + "/replay-ca.pem"])
        let second = try Tools.run(["python3", "-c", client, String(replay.port), dir + "/replay-ca.pem"])
        #expect(second.stdout == "sent\n", "\(second.stderr)")
        #expect(replay.finish().status == 0)
    }

    @Test("swaks (STARTTLS verified, AUTH LOGIN, a fixed message) through the proxy to aiosmtpd, then against the replay: the same server lines and exit status",
          .enabled(if: Tools.available("swaks"), "swaks is not installed"))
    func swaksRoundTrip() throws {
        let (cert, key) = try PythonServer.certificate()
        let upstream = try PythonServer(PythonServer.aiosmtpd, arguments: [cert, key])
        defer { upstream.stop() }
        let dir = try Self.folder()
        let message = try Tools.temporaryFile("message.eml", contents: "Date: Mon, 01 Jan 2024 10:00:00 +0000\r\nMessage-Id: <fixed@example.com>\r\nSubject: swaks through the proxy\r\n\r\nhello\r\n")
        func swaks(_ port: Int, ca: String) throws -> Tools.Result {
            try Tools.run(["swaks", "--server", "127.0.0.1", "--port", String(port), "--helo", "client.example.test",
                           "--from", "alice@example.com", "--to", "bob@example.net", "--data", "@" + message, "--timeout", "10",
                           "--tls", "--tls-verify", "--tls-ca-path", ca, "--auth", "LOGIN", "--auth-user", "alice", "--auth-password", "s3cret"])
        }
        let proxy = try ReplayProcess(["--upstream", "127.0.0.1:\(upstream.port)", "--upstream-ca", cert, "-o", dir, "--listen", "127.0.0.1:0",
                                       "--sessions", "1", "--tls-ca-out", dir + "/proxy-ca.pem"], command: "record")
        let recorded = try swaks(proxy.port, ca: dir + "/proxy-ca.pem")
        #expect(proxy.finish().status == 0)
        #expect(recorded.status == 0, "\(recorded.stdout)\(recorded.stderr)")
        let scenario = try #require(try Self.files(dir, ".yaml").first)
        let replay = try ReplayProcess([scenario, "--listen", "127.0.0.1:0", "--sessions", "1", "--tls-ca-out", dir + "/replay-ca.pem"])
        let replayed = try swaks(replay.port, ca: dir + "/replay-ca.pem")
        let end = replay.finish()
        #expect(replayed.status == recorded.status)
        let lines = Tools.serverLines(recorded.stdout)
        #expect(lines.contains { $0.hasPrefix("<~  235") } && lines.count >= 12, "\(lines)")
        #expect(Tools.serverLines(replayed.stdout) == lines)
        #expect(end.status == 0, "\(end.stderr)")
    }
}
