import Foundation
import SMTPCore
import Testing

/// The `smtptape` executable as users run it: exit codes, one-line errors, output formats.
@Suite struct CLITests {
    /// The executable sits beside the test bundle in the build folder; SMTPTAPE_BINARY names
    /// another (to run these tests against an older build, say).
    static let executable = ProcessInfo.processInfo.environment["SMTPTAPE_BINARY"].map { URL(fileURLWithPath: $0) }
        ?? URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("smtptape")

    struct Result {
        var status: Int32
        var stdout: Data
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    /// Runs the built executable; `stdin` (a file) becomes its standard input.
    func smtptape(_ arguments: [String], stdin: URL? = nil) throws -> Result {
        try #require(FileManager.default.isExecutableFile(atPath: Self.executable.path), "build the smtptape product first (swift build --build-tests)")
        let process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        if let stdin { process.standardInput = try FileHandle(forReadingFrom: stdin) }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: stdout, stderr: String(decoding: stderr, as: UTF8.self))
    }

    @Test func transcriptOfABundledCapture() throws {
        let result = try smtptape(["transcript", Fixtures.capture("swaks-sink-plain")])
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        #expect(result.text.contains("S: 220 sink.example.test ESMTP"))
        #expect(!result.text.contains("\u{1B}["), "no colour when not on a terminal")
    }

    @Test func missingFileExits2WithOneLine() throws {
        let result = try smtptape(["transcript", "/nonexistent.pcap"])
        #expect(result.status == 2)
        #expect(result.stderr == "smtptape: /nonexistent.pcap: no such file\n")
    }

    @Test func noSMTPExits1() throws {
        var c = Conversation(server: .v4(192, 0, 2, 80, port: 80))
        c.handshake()
        c.client("GET / HTTP/1.0\r\n\r\n")
        let url = Fixtures.temporaryFile("http.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        try c.pcap.write(to: url)
        let result = try smtptape(["transcript", url.path])
        #expect(result.status == 1)
        #expect(result.stderr.hasPrefix("smtptape: warning: \(url.path): no SMTP sessions found"))
        #expect(result.stderr.split(separator: "\n").count == 1)
    }

    @Test func truncatedCaptureExits1AndStillPrints() throws {
        let url = Fixtures.temporaryFile("cut.pcap")
        defer { try? FileManager.default.removeItem(at: url) }
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.capture("smtplib-sink-multi")))
        try data.prefix(data.count - 400).write(to: url)  // cuts the packet after message 3's data
        let result = try smtptape(["transcript", "--data", "none", url.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains(": packet "))
        #expect(result.text.contains("capture file damaged"))
        #expect(result.text.contains("message 3: "))
    }

    @Test func wrongArgumentsExit64() throws {
        #expect(try smtptape(["transcript", "--no-such-flag", "x.pcap"]).status == 64)
        #expect(try smtptape(["transcript", "--data", "some", Fixtures.capture("swaks-sink-plain")]).status == 64)
        #expect(try smtptape(["transcript", "--filter", "port twenty", Fixtures.capture("swaks-sink-plain")]).status == 64)
    }

    /// JSON Lines: every line an object with the shared fields; the raw bytes of each direction
    /// concatenate to the stream; message data complete even with --data none.
    @Test func jsonLines() throws {
        let result = try smtptape(["transcript", "--format", "json", "--data", "none", Fixtures.capture("smtplib-sink-multi")])
        #expect(result.status == 0)
        var client = Data(), server = Data()
        var types: [String] = []
        for line in result.stdout.split(separator: 0x0A) {
            let object = try #require(try JSONSerialization.jsonObject(with: line) as? [String: Any])
            #expect(object["session"] as? Int == 1)
            let time = try #require(object["time"] as? String)
            #expect(time.count == 27 && time.hasSuffix("Z"))
            let type = try #require(object["type"] as? String)
            types.append(type)
            if let raw = object["raw"] as? String {
                let bytes = try #require(Data(base64Encoded: raw))
                if object["from"] as? String == "client" { client += bytes } else { server += bytes }
            }
        }
        #expect(types.first == "session_start" && types.last == "session_end")
        #expect(types.filter { $0 == "message_end" }.count == 3)
        let (observer, _) = Fixtures.extract([Fixtures.capture("smtplib-sink-multi")])
        #expect([UInt8](client) == observer.stream(session: 1, side: .client))
        #expect([UInt8](server) == observer.stream(session: 1, side: .server))
    }

    @Test func messagesAreWrittenByNumberOnly() throws {
        let folder = Fixtures.temporaryFile("eml")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try smtptape(["messages", Fixtures.capture("swaks-sink-plain"), Fixtures.capture("smtplib-sink-multi"), "-o", folder.appendingPathComponent("nested/out").path])
        #expect(result.status == 0)
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.appendingPathComponent("nested/out").path).sorted()
        #expect(names == ["session-0001-message-01.eml", "session-0002-message-01.eml", "session-0002-message-02.eml", "session-0002-message-03.eml"])
        #expect(result.text.split(separator: "\n").count == 4)
    }

    @Test func helpHasExamples() throws {
        for command in ["transcript", "messages", "extract", "check", "format"] {
            let result = try smtptape([command, "--help"])
            #expect(result.status == 0)
            #expect(result.text.contains("Example"))
        }
    }
}

/// The scenario commands as users run them.
@Suite struct ScenarioCLITests {
    let cli = CLITests()

    @Test func extractCheckFormatTranscript() throws {
        let folder = Fixtures.temporaryFile("scenarios")
        defer { try? FileManager.default.removeItem(at: folder) }
        let extract = try cli.smtptape(["extract", Fixtures.capture("swaks-sink-plain"), Fixtures.capture("smtplib-aiosmtpd-auth-plain"), "-o", folder.path])
        #expect(extract.status == 0)
        let files = extract.text.split(separator: "\n").map(String.init)
        #expect(files.map { URL(fileURLWithPath: $0).lastPathComponent } == ["swaks-sink-plain-session-1.yaml", "smtplib-aiosmtpd-auth-plain-session-2.yaml"])
        let yaml = try String(contentsOfFile: files[1], encoding: .utf8)
        #expect(yaml.contains("client: AUTH PLAIN '[REDACTED]'") || yaml.contains("client: AUTH PLAIN [REDACTED]"))
        #expect(!yaml.contains("AGFsaWNlAHdvbmRlcmxhbmQ="))
        #expect(!yaml.contains(Fixtures.captures.path), "no absolute path in origin")
        #expect(try cli.smtptape(["check"] + files).status == 0)
        #expect(try cli.smtptape(["format", "--check"] + files).status == 0)
        let transcript = try cli.smtptape(["transcript", "--data", "none", files[0], Fixtures.capture("curl-sink-plain")])
        #expect(transcript.status == 0)
        #expect(transcript.text.contains("== session 1:") && transcript.text.contains("== session 2:"))
        #expect(transcript.text.contains("C: EHLO client.example.test"))
    }

    /// A capture whose one message is over 1 MiB: the message is sent as DATA in many segments,
    /// with a line that begins with a dot (stuffed on the wire, not in the file).
    static func largeMessageCapture(in folder: URL) throws -> (capture: URL, content: [UInt8]) {
        var content = Array("From: Alice <alice@example.test>\r\nSubject: the whole archive\r\n\r\n".utf8)
        var line = 0
        while content.count <= (1 << 20) + 4096 {
            line += 1
            content += Array((line == 500 ? ".a line that begins with a dot\r\n" : "line \(line) of the archive, which goes on and on\r\n").utf8)
        }
        var c = Conversation()
        c.handshake()
        c.server("220 mx.example.test ESMTP\r\n")
        c.client("EHLO client.example.test\r\n")
        c.server("250-mx.example.test\r\n250 SIZE 52428800\r\n")
        c.client("MAIL FROM:<alice@example.test>\r\n")
        c.server("250 2.1.0 Ok\r\n")
        c.client("RCPT TO:<bob@example.test>\r\n")
        c.server("250 2.1.5 Ok\r\n")
        c.client("DATA\r\n")
        c.server("354 End data with <CR><LF>.<CR><LF>\r\n")
        let wire = DotStuffing.stuff(content)
        for start in stride(from: 0, to: wire.count, by: 32 << 10) {
            c.client(Array(wire[start..<min(start + (32 << 10), wire.count)]))
        }
        c.server("250 2.0.0 Ok: queued as 4C2F1A\r\n")
        c.client("QUIT\r\n")
        c.server("221 2.0.0 Bye\r\n")
        c.closeByServer()
        let capture = folder.appendingPathComponent("big.pcap")
        try c.pcap.write(to: capture)
        return (capture, content)
    }

    /// A message over 1 MiB goes beside its scenario: the scenario names the file, the file holds
    /// the exact content, `check` and `format --check` accept the scenario, its transcript shows
    /// what the capture's shows, and the file is covered by the rules for existing files.
    @Test func extractKeepsALargeMessageBesideTheScenario() throws {
        let folder = Fixtures.temporaryFile("large")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let (capture, content) = try Self.largeMessageCapture(in: folder)
        let out = folder.appendingPathComponent("out")
        let extract = try cli.smtptape(["extract", capture.path, "-o", out.path])
        #expect(extract.status == 0, "\(extract.stderr)")
        let files = extract.text.split(separator: "\n").map(String.init)
        #expect(files.map { URL(fileURLWithPath: $0).lastPathComponent } == ["big-session-1.yaml", "big-session-1-s1-step5.eml"])
        guard files.count == 2 else { return }
        let yaml = try String(contentsOfFile: files[0], encoding: .utf8)
        #expect(yaml.contains("\n  - message-file: big-session-1-s1-step5.eml\n    reply: '250 2.0.0 Ok: queued as 4C2F1A'\n"))
        #expect(yaml.utf8.count < 4096)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: files[1]))) == content)
        #expect(try cli.smtptape(["check", files[0]]).status == 0)
        #expect(try cli.smtptape(["format", "--check", files[0]]).status == 0)

        // The scenario's transcript shows the capture's commands, replies and message data.
        let fromCapture = try cli.smtptape(["transcript", "--data", "full", capture.path])
        let fromScenario = try cli.smtptape(["transcript", "--data", "full", files[0]])
        #expect(fromScenario.status == 0, "\(fromScenario.stderr)")
        let captured = Self.dialogueLines(fromCapture.text), played = Self.dialogueLines(fromScenario.text)
        #expect(captured.filter { $0.hasPrefix("D: ") }.count > 20_000)
        for tag in ["C: ", "S: ", "D: "] {
            #expect(played.filter { $0.hasPrefix(tag) } == captured.filter { $0.hasPrefix(tag) }, "\(tag)")
        }

        // Extracting again: the message file exists too, so nothing is written without --force.
        try Data("changed".utf8).write(to: URL(fileURLWithPath: files[1]))
        try FileManager.default.removeItem(atPath: files[0])
        let again = try cli.smtptape(["extract", capture.path, "-o", out.path])
        #expect(again.status == 2)
        #expect(again.stderr.contains("big-session-1-s1-step5.eml already exists"), "\(again.stderr)")
        #expect(!FileManager.default.fileExists(atPath: files[0]))
        #expect(try cli.smtptape(["extract", "--force", capture.path, "-o", out.path]).status == 0)
        #expect(try [UInt8](Data(contentsOf: URL(fileURLWithPath: files[1]))) == content)

        // `format` rewrites the scenario and leaves the message file alone.
        try Data(("# a comment\n" + yaml).utf8).write(to: URL(fileURLWithPath: files[0]))
        try Data("Subject: edited by hand\r\n".utf8).write(to: URL(fileURLWithPath: files[1]))
        let format = try cli.smtptape(["format", files[0]])
        #expect(format.status == 0, "\(format.stderr)")
        #expect(try String(contentsOfFile: files[0], encoding: .utf8) == yaml)
        #expect(try String(contentsOfFile: files[1], encoding: .utf8) == "Subject: edited by hand\r\n")
        // Read from standard input, the scenario has no folder to read the message from.
        let piped = try cli.smtptape(["check", "-"], stdin: URL(fileURLWithPath: files[0]))
        #expect(piped.status == 1)
        let line = yaml.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0.hasPrefix("  - message-file:") }.map { $0 + 1 } ?? 0
        #expect(piped.stderr.hasPrefix("stdin:\(line):5: 'message-file' names a file beside the scenario, and a scenario read from standard input has no folder to read 'big-session-1-s1-step5.eml' from\n"), "\(piped.stderr)")
    }

    /// The `C:`, `S:` and `D:` lines of a transcript, without their times.
    static func dialogueLines(_ transcript: String) -> [String] {
        transcript.split(separator: "\n").compactMap { line in
            let trimmed = line.drop { $0 == " " || $0 == "+" || $0 == "." || $0.isNumber }
            return ["C: ", "S: ", "D: "].contains { trimmed.hasPrefix($0) } ? String(trimmed) : nil
        }
    }

    @Test func extractPicksSessions() throws {
        let folder = Fixtures.temporaryFile("picked")
        defer { try? FileManager.default.removeItem(at: folder) }
        let result = try cli.smtptape(["extract", "--session", "2", Fixtures.capture("swaks-sink-plain"), Fixtures.capture("curl-sink-plain"), "-o", folder.path])
        #expect(result.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["curl-sink-plain-session-2.yaml"])
    }

    @Test func checkReportsProblemsWithPositionsAndExitCodes() throws {
        let bad = Fixtures.temporaryFile("bad.yaml")
        defer { try? FileManager.default.removeItem(at: bad) }
        try Data("version: 1\nname: x\nsessions:\n- greeting: 220 hi\n  steps:\n  - client: NOOP\n    replly: 250 ok\n".utf8).write(to: bad)
        let result = try cli.smtptape(["check", bad.path])
        #expect(result.status == 1)
        #expect(result.stderr.contains("\(bad.path):7:5: unknown field 'replly'; did you mean 'reply'?\n"))
        #expect(result.stderr.contains("\(bad.path):6:5: missing 'reply'"))
        #expect(result.stderr.hasSuffix("smtptape: 2 problems in 1 file\n"))
        #expect(result.text.isEmpty)
        let missing = try cli.smtptape(["check", "/nonexistent.yaml"])
        #expect(missing.status == 2)
        #expect(missing.stderr.hasPrefix("/nonexistent.yaml:1:1: no such file\n"))
    }

    @Test func formatRewritesIntoCanonicalForm() throws {
        let file = Fixtures.temporaryFile("messy.yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data("# a comment\nname: messy\nversion: 1\nsessions:\n  - steps:\n      - reply: \"250 ok\"\n        client: \"NOOP\"\n    greeting: '220 hi'\n".utf8).write(to: file)
        #expect(try cli.smtptape(["format", "--check", file.path]).status == 1)
        #expect(try cli.smtptape(["format", file.path]).status == 0)
        #expect(try String(contentsOf: file, encoding: .utf8) == "version: 1\nname: messy\nsessions:\n- greeting: 220 hi\n  steps:\n  - client: NOOP\n    reply: 250 ok\n")
        #expect(try cli.smtptape(["format", "--check", file.path]).status == 0)
    }
}
