import Foundation
import SMTPScenario
import Testing

/// The promise of record and replay, kept live: a session between a real client and a real server
/// is captured with tcpdump on loopback, extracted with `smtptape extract`, and replayed with
/// `smtptape replay`; the same client run against the replay gets the replies it got from the real
/// server, line for line, ends with the same exit status, and the replay's verdict passes.
///
/// The clients are made deterministic (EHLO name, envelope, a message with a fixed Date and
/// Message-Id), since the extracted scenario matches envelope lines exactly.
@Suite(.enabled(if: Tools.canCaptureLoopback, "capturing on lo needs tcpdump and root"),
       .enabled(if: FileManager.default.isExecutableFile(atPath: Tools.smtptape), "build the smtptape product first (swift build --build-tests)"))
struct CaptureReplayTests {
    static let message = """
        Date: Mon, 01 Jan 2024 12:00:00 +0000
        Message-Id: <capture-replay@example.com>
        From: alice@example.com
        To: bob@example.net
        Subject: captured, then replayed

        Hello Bob.
        """

    /// What a run of the client showed: the server's lines in its own transcript, and its exit status.
    struct Run {
        var status: Int32
        var serverLines: [String]
        var transcript: String
    }

    /// A real server on `port`, left running until the capture is over.
    typealias Server = @Sendable (_ port: Int) async throws -> BackgroundProcess
    /// The client against `port`.
    typealias Client = @Sendable (_ port: Int) async throws -> Run

    /// aiosmtpd through the capture script's server (Captures/servers/aiosmtpd_server.py): AUTH
    /// PLAIN and LOGIN for alice/wonderland, 550 5.1.1 for a recipient named nobody@.
    static let aiosmtpd: Server = { port in
        let script = Tools.repository.appendingPathComponent("Captures/servers/aiosmtpd_server.py").path
        let server = try BackgroundProcess(["python3", script, "--host", "127.0.0.1", "--port", String(port),
                                            "--hostname", "aiosmtpd.example.test", "--auth", "--allow-plaintext-auth"])
        // READY comes after the listener is up and its own trigger connection is over.
        try await server.waitUntil("READY") { stdout, _ in stdout.contains("READY ") }
        return server
    }

    /// Postfix's smtp-sink (it refuses to run as root without -u).
    static let smtpSink: Server = { port in
        let server = try BackgroundProcess(["smtp-sink", "-u", "nobody", "-h", "sink.example.test", "127.0.0.1:\(port)", "16"])
        try await server.waitUntil("a listener") { _, _ in Tools.isListening(port: port) }
        return server
    }

    static func swaks(to recipient: String = "bob@example.net", _ options: [String] = []) throws -> Client {
        let data = try Tools.temporaryFile("message.eml", contents: message.replacingOccurrences(of: "\n", with: "\r\n"))
        return { port in
            let result = try await Tools.runAsync(["swaks", "--server", "127.0.0.1", "--port", String(port), "--helo", "client.example.test",
                                                   "--from", "alice@example.com", "--to", recipient, "--data", "@" + data,
                                                   "--timeout", "10"] + options)
            return Run(status: result.status, serverLines: Tools.serverLines(result.stdout), transcript: result.stdout + result.stderr)
        }
    }

    static func curl(_ options: [String] = []) throws -> Client {
        let file = try Tools.temporaryFile("message.txt", contents: message + "\n")
        return { port in
            let result = try await Tools.runAsync(["curl", "-sS", "-v", "--max-time", "10", "--crlf", "smtp://127.0.0.1:\(port)/client.example.test",
                                                   "--mail-from", "alice@example.com", "--mail-rcpt", "bob@example.net",
                                                   "--upload-file", file] + options)
            return Run(status: result.status, serverLines: Tools.serverLines(result.stderr), transcript: result.stderr)
        }
    }

    /// Captures `client` against `server`, extracts the session, replays it to the same client;
    /// checks that the replay passed every step, and returns both runs.
    func recordAndReplay(server start: Server, client: Client) async throws -> (real: Run, replayed: Run) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-capture-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let pcap = folder.appendingPathComponent("capture.pcap").path

        // The real dialogue, on the wire.
        let port = try Tools.freePort()
        let server = try await start(port)
        defer { server.stop() }
        // -U and --immediate-mode: packets reach the file as they come, none lost to SIGINT;
        // -Z root: keep writing where root created the folder.
        let tcpdump = try BackgroundProcess(["tcpdump", "-i", "lo", "-w", pcap, "-U", "-s", "0", "-B", "65536", "--immediate-mode",
                                             "-Z", "root", "tcp port \(port)"])
        defer { tcpdump.stop() }
        try await tcpdump.waitUntil("'listening on'") { _, stderr in stderr.contains("listening on") }
        let real = try await client(port)
        try await Task.sleep(nanoseconds: 300_000_000)  // the last FIN and ACK
        tcpdump.interrupt()
        #expect(try await tcpdump.wait() == 0, "\(tcpdump.stderr)")
        #expect(tcpdump.stderr.contains("\n0 packets dropped by kernel"), "\(tcpdump.stderr)")
        server.stop()

        // The scenario.
        let scenarios = folder.appendingPathComponent("scenarios").path
        let extract = try await Tools.runAsync([Tools.smtptape, "extract", "-o", scenarios, pcap])
        #expect(extract.status == 0, "\(extract.stderr)")
        let files = extract.stdout.split(separator: "\n").map(String.init)
        try #require(files.count == 1, "one session captured: \(extract.stdout)\(extract.stderr)")
        let scenario = try String(contentsOfFile: files[0], encoding: .utf8)
        let scripted = try #require(ScenarioReader.parse(scenario, file: files[0]).scenario?.sessions.first?.steps.count)

        // The replay, to the same client.
        let report = folder.appendingPathComponent("report.jsonl").path
        let replay = try BackgroundProcess([Tools.smtptape, "replay", files[0], "--listen", "127.0.0.1:0", "--sessions", "1", "--report", report])
        defer { replay.stop() }
        try await replay.waitUntil("the bound address") { stdout, _ in stdout.contains("\n") }
        let address = try #require(replay.stdout.split(separator: "\n").first)
        let replayPort = try #require(Int(address.split(separator: ":").last ?? ""), "\(address)")
        let replayed = try await client(replayPort)
        let status = try await replay.wait()
        #expect(status == 0, "replay: \(replay.stderr)\nscenario:\n\(scenario)")
        #expect(replay.stderr.contains("smtptape: 1 session, 1 passed, 0 failed"), "\(replay.stderr)")

        // The verdict, step by step.
        let lines = try String(contentsOfFile: report, encoding: .utf8).split(separator: "\n")
        let verdict = try #require(lines.first.flatMap { try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] })
        #expect(verdict["type"] as? String == "verdict" && verdict["passed"] as? Bool == true, "\(lines)")
        let steps = try #require(verdict["steps"] as? [[String: Any]])
        #expect(!steps.isEmpty && steps.allSatisfy { $0["status"] as? String == "passed" }, "\(steps)")
        #expect(steps.count == scripted, "every scripted step played:\n\(scenario)")
        return (real, replayed)
    }

    func expectSame(_ real: Run, _ replayed: Run, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(replayed.serverLines == real.serverLines, "real server:\n\(real.transcript)\nreplay:\n\(replayed.transcript)",
                sourceLocation: sourceLocation)
        #expect(replayed.status == real.status, sourceLocation: sourceLocation)
    }

    @Test("swaks and aiosmtpd, AUTH PLAIN and a message: the replay gives swaks the same replies and exit status 0",
          .enabled(if: Tools.available("swaks"), "swaks is not installed"),
          .enabled(if: Tools.python(has: "aiosmtpd"), "python3 -m pip install aiosmtpd"))
    func swaksAuth() async throws {
        let (real, replayed) = try await recordAndReplay(
            server: Self.aiosmtpd, client: try Self.swaks(["--auth", "PLAIN", "--auth-user", "alice", "--auth-password", "wonderland"]))
        #expect(real.status == 0, "\(real.transcript)")
        #expect(real.serverLines.first?.hasPrefix("<-  220 aiosmtpd.example.test ") == true, "\(real.transcript)")
        #expect(real.serverLines.contains("<-  235 2.7.0 Authentication successful"), "\(real.transcript)")
        #expect(real.serverLines.suffix(2) == ["<-  250 2.0.0 Ok: queued", "<-  221 Bye"], "\(real.transcript)")
        expectSame(real, replayed)
    }

    @Test("swaks and aiosmtpd, the only recipient refused with 550: the replay refuses it the same way, swaks exits 24 both times",
          .enabled(if: Tools.available("swaks"), "swaks is not installed"),
          .enabled(if: Tools.python(has: "aiosmtpd"), "python3 -m pip install aiosmtpd"))
    func swaksRefused() async throws {
        let (real, replayed) = try await recordAndReplay(server: Self.aiosmtpd, client: try Self.swaks(to: "nobody@example.net"))
        #expect(real.status == 24, "\(real.transcript)")
        #expect(real.serverLines.contains("<** 550 5.1.1 <nobody@example.net>: Recipient address rejected"), "\(real.transcript)")
        expectSame(real, replayed)
    }

    @Test("curl and aiosmtpd, AUTH with a 334 challenge and a message: the replay gives curl the same replies",
          .enabled(if: Tools.available("curl"), "curl is not installed"),
          .enabled(if: Tools.python(has: "aiosmtpd"), "python3 -m pip install aiosmtpd"))
    func curlAuth() async throws {
        let (real, replayed) = try await recordAndReplay(server: Self.aiosmtpd, client: try Self.curl(["--user", "alice:wonderland"]))
        #expect(real.status == 0, "\(real.transcript)")
        #expect(real.serverLines.contains("< 235 2.7.0 Authentication successful"), "\(real.transcript)")
        #expect(real.serverLines.contains { $0.hasPrefix("< 334") }, "\(real.transcript)")
        expectSame(real, replayed)
    }

    @Test("curl and Postfix smtp-sink: the replay gives curl the same replies, the sink's empty last EHLO line included",
          .enabled(if: Tools.available("curl"), "curl is not installed"),
          .enabled(if: Tools.available("smtp-sink"), "smtp-sink (Postfix) is not installed"))
    func curlSink() async throws {
        let (real, replayed) = try await recordAndReplay(server: Self.smtpSink, client: try Self.curl())
        #expect(real.status == 0, "\(real.transcript)")
        #expect(real.serverLines.first == "< 220 sink.example.test ESMTP", "\(real.transcript)")
        #expect(real.serverLines.contains("< 250 "), "\(real.transcript)")
        expectSame(real, replayed)
    }

    /// tcpdump on lo until `body` is done; returns the capture's path.
    static func capture(port: Int, into folder: URL, name: String, _ body: () async throws -> Void) async throws -> String {
        let pcap = folder.appendingPathComponent(name).path
        let tcpdump = try BackgroundProcess(["tcpdump", "-i", "lo", "-w", pcap, "-U", "-s", "0", "-B", "65536", "--immediate-mode",
                                             "-Z", "root", "tcp port \(port)"])
        defer { tcpdump.stop() }
        try await tcpdump.waitUntil("'listening on'") { _, stderr in stderr.contains("listening on") }
        try await body()
        try await Task.sleep(nanoseconds: 300_000_000)  // the last FIN and ACK
        tcpdump.interrupt()
        #expect(try await tcpdump.wait() == 0, "\(tcpdump.stderr)")
        return pcap
    }

    /// The lines of a transcript that are the dialogue (`C:`, `S:`, `D:`), without their times.
    static func dialogue(_ transcript: String) -> [String] {
        transcript.split(separator: "\n").compactMap { line in
            let text = line.drop { $0 == " " || $0 == "+" || $0 == "." || $0.isNumber }.drop { $0 == " " }
            return text.hasPrefix("C: ") || text.hasPrefix("S: ") || text.hasPrefix("D: ") ? String(text) : nil
        }
    }

    @Test("the loop through TLS: curl and aiosmtpd over STARTTLS, captured with curl's key log; extract --keylog; replay with --keylog-out to curl again, captured: both captures decrypt to the same dialogue",
          .enabled(if: Tools.available("curl"), "curl is not installed"))
    func throughTLS() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("smtptape-tls-loop-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let message = try Tools.temporaryFile("message.txt", contents: Self.message + "\n")
        func curl(_ port: Int, keys: String?) async throws -> Run {
            let result = try await Tools.runAsync(["curl", "-sS", "-v", "-k", "--ssl-reqd", "--max-time", "10", "--crlf",
                                                   "smtp://127.0.0.1:\(port)/client.example.test", "--mail-from", "alice@example.com",
                                                   "--mail-rcpt", "bob@example.net", "--upload-file", message],
                                                  environment: keys.map { ["SSLKEYLOGFILE": $0] } ?? [:])
            return Run(status: result.status, serverLines: Tools.serverLines(result.stderr), transcript: result.stderr)
        }

        // The real server: aiosmtpd with STARTTLS; curl writes its key log.
        let port = try Tools.freePort()
        let script = Tools.repository.appendingPathComponent("Captures/servers/aiosmtpd_server.py").path
        let server = try BackgroundProcess(["python3", script, "--host", "127.0.0.1", "--port", String(port), "--starttls"])
        defer { server.stop() }
        try await server.waitUntil("READY") { stdout, _ in stdout.contains("READY ") }
        let curlKeys = folder.appendingPathComponent("curl.keys").path
        var real: Run?
        let first = try await Self.capture(port: port, into: folder, name: "real.pcap") { real = try await curl(port, keys: curlKeys) }
        server.stop()
        let realRun = try #require(real)
        #expect(realRun.status == 0, "\(realRun.transcript)")

        let scenarios = folder.appendingPathComponent("scenarios").path
        let extract = try await Tools.runAsync([Tools.smtptape, "extract", "--keylog", curlKeys, "-o", scenarios, first])
        #expect(extract.status == 0, "\(extract.stderr)")
        let file = try #require(extract.stdout.split(separator: "\n").first.map(String.init))
        let yaml = try String(contentsOfFile: file, encoding: .utf8)
        #expect(yaml.contains("tls: start") && !yaml.contains("incomplete:"), "\(yaml)")

        // The replay: its own key log (BoringSSL, through NIOSSL), and a capture of it.
        let replayKeys = folder.appendingPathComponent("replay.keys").path
        let replay = try BackgroundProcess([Tools.smtptape, "replay", file, "--listen", "127.0.0.1:0", "--sessions", "1", "--keylog-out", replayKeys])
        defer { replay.stop() }
        try await replay.waitUntil("the bound address") { stdout, _ in stdout.contains("\n") }
        let address = try #require(replay.stdout.split(separator: "\n").first)
        let replayPort = try #require(Int(address.split(separator: ":").last ?? ""), "\(address)")
        var replayed: Run?
        let second = try await Self.capture(port: replayPort, into: folder, name: "replayed.pcap") { replayed = try await curl(replayPort, keys: nil) }
        #expect(try await replay.wait() == 0, "\(replay.stderr)")
        expectSame(realRun, try #require(replayed))

        // Each capture, decrypted with its key log: the same dialogue, with nothing left encrypted.
        let realText = try await Tools.runAsync([Tools.smtptape, "transcript", "--keylog", curlKeys, "--data", "full", "--color", "never", first])
        let replayText = try await Tools.runAsync([Tools.smtptape, "transcript", "--keylog", replayKeys, "--port", String(replayPort),
                                                   "--data", "full", "--color", "never", second])
        #expect(realText.stdout.contains("decrypted with the key log") && replayText.stdout.contains("decrypted with the key log"),
                "\(realText.stdout)\(realText.stderr)\n\(replayText.stdout)\(replayText.stderr)")
        #expect(!realText.stdout.contains("cannot decrypt") && !replayText.stdout.contains("cannot decrypt"))
        let realLines = Self.dialogue(realText.stdout)
        #expect(realLines.contains { $0.hasPrefix("C: MAIL FROM:<alice@example.com>") } && realLines.contains("D: Hello Bob."), "\(realText.stdout)")
        #expect(Self.dialogue(replayText.stdout) == realLines, "real:\n\(realText.stdout)\nreplayed:\n\(replayText.stdout)")
    }
}
