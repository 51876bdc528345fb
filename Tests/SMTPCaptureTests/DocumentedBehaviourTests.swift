import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Every behaviour the README documents, pinned through the built binary, section by section:
/// exit statuses and error lines, `--port`, `--filter`, `--show-secrets`, `--data`, `--color`,
/// `extract --session`, the flags and `--` markers of text transcripts, and every field of every
/// JSON event, checked against values worked out by hand.
///
/// Synthetic captures start at 1,700,000,000 s (2023-11-14T22:13:20Z) and each packet comes
/// 1 ms after the one before (``PcapBuilder``), so the n-th packet of a file is stamped n ms
/// after that: packet 4 at `2023-11-14T22:13:20.004000Z`, packet 24 at `...20.024000Z`.
@Suite struct DocumentedBehaviourTests {
    let cli = CLITests()

    // MARK: Helpers

    /// A folder for one test's files; the caller removes it (`defer`).
    static func folder(_ name: String) throws -> URL {
        let url = Fixtures.temporaryFile(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ pcap: PcapBuilder, _ name: String, in folder: URL) throws -> String {
        let url = folder.appendingPathComponent(name)
        try pcap.write(to: url)
        return url.path
    }

    static func write(_ text: String, _ name: String, in folder: URL) throws -> String {
        let url = folder.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url.path
    }

    /// A handshake whose SYN comes `advance` microseconds after the packet before it.
    static func handshake(_ c: inout Conversation, after advance: Int64) {
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, flags: PcapBuilder.syn, advance: advance)
        c.pcap.segment(from: c.server, to: c.client, seq: c.serverSeq, ack: c.clientSeq &+ 1, flags: PcapBuilder.syn | PcapBuilder.ack)
        c.clientSeq &+= 1
        c.serverSeq &+= 1
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.ack)
    }

    static func resetByClient(_ c: inout Conversation) {
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, flags: PcapBuilder.rst | PcapBuilder.ack)
    }

    static func resetByServer(_ c: inout Conversation) {
        c.pcap.segment(from: c.server, to: c.client, seq: c.serverSeq, ack: c.clientSeq, flags: PcapBuilder.rst | PcapBuilder.ack)
    }

    /// Handshake (packets 1-3), greeting, NOOP and its 250 (4-6), left open (no FIN).
    static func openSession(_ c: inout Conversation) {
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("NOOP\r\n")
        c.server("250 2.0.0 Ok\r\n")
    }

    static func lines(_ text: String) -> [String] { text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init) }

    /// The JSON Lines of a run, parsed keeping types.
    func json(_ arguments: [String]) throws -> [JSON] {
        let result = try cli.smtptape(["transcript", "--format", "json"] + arguments)
        #expect(result.status == 0, "\(result.stderr)")
        return try Self.lines(result.text).map { try JSON.parse($0) }
    }

    /// base64 of `text`, by Foundation.
    static func b64(_ text: String) -> JSON { .string(Data(text.utf8).base64EncodedString()) }

    // MARK: Exit status and errors

    /// Each row of the README's exit status table: the status, and standard error as one line
    /// per problem, naming the file (and the packet where there is one).
    enum ExitRow: String, CaseIterable, CustomTestStringConvertible {
        case success, damagedCapture, truncatedCapture, corruptPackets, noSMTP, checkProblems, formatNotCanonical
        case missingFile, unreadableFile, notACapture, notAScenario, outputFolderConflict
        case unknownOption, badFilter, threeProblemsThreeLines
        var testDescription: String { rawValue }
    }

    /// How a line of standard error must look.
    enum Line: CustomStringConvertible {
        case exact(String)
        case around(prefix: String, suffix: String)

        func matches(_ line: String) -> Bool {
            switch self {
            case .exact(let text): line == text
            case .around(let prefix, let suffix): line.hasPrefix(prefix) && line.hasSuffix(suffix)
            }
        }

        var description: String {
            switch self {
            case .exact(let text): text
            case .around(let prefix, let suffix): prefix + "..." + suffix
            }
        }
    }

    /// Port 25: handshake (packets 1-3), greeting, NOOP, 250 (4-6), QUIT, 221 (7, 8), closed (9-11).
    static func plainSession() -> Conversation {
        var c = Conversation()
        openSession(&c)
        c.client("QUIT\r\n")
        c.server("221 2.0.0 Bye\r\n")
        c.close()
        return c
    }

    /// A session cut by a damaged record: its 8th and last record, the server's 221, has an
    /// impossible length (libpcap: damaged record).
    static func damagedCapture(in dir: URL) throws -> (path: String, packet: Int) {
        var c = Conversation()
        openSession(&c)
        c.client("QUIT\r\n")
        c.server("221 2.0.0 Bye\r\n")
        c.pcap.damageLastRecordLength()
        return (try write(c.pcap, "damaged.pcap", in: dir), c.pcap.records.count)
    }

    /// An HTTP connection: 4 packets, 1 TCP connection, no SMTP.
    static func httpCapture(in dir: URL) throws -> String {
        var c = Conversation(server: .v4(192, 0, 2, 80, port: 80))
        c.handshake()
        c.client("GET / HTTP/1.0\r\n\r\n")
        return try write(c.pcap, "http.pcap", in: dir)
    }

    @Test(arguments: ExitRow.allCases)
    func exitStatusTable(_ row: ExitRow) throws {
        let dir = try Self.folder("exit-\(row.rawValue)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let arguments: [String]
        let status: Int32
        var expected: [Line]
        var stdout: String?
        switch row {
        case .success:
            let path = try Self.write(Self.plainSession().pcap, "plain.pcap", in: dir)
            (arguments, status, expected) = (["transcript", path], 0, [])
        case .damagedCapture:
            let (path, packet) = try Self.damagedCapture(in: dir)
            #expect(packet == 8)
            (arguments, status) = (["transcript", path], 1)
            expected = [.around(prefix: "smtptape: \(path): packet 8: damaged record (libpcap: ", suffix: "); the packets before it were read")]
        case .truncatedCapture:
            // The last record, packet 11 (the client's final ACK, 54 bytes of frame), loses its last 10 bytes.
            let url = dir.appendingPathComponent("cut.pcap")
            try Self.plainSession().pcap.write(to: url, truncateBy: 10)
            (arguments, status) = (["transcript", url.path], 1)
            expected = [.around(prefix: "smtptape: \(url.path): packet 11: capture truncated in the middle of a record (libpcap: ", suffix: "); the packets before it were read")]
        case .corruptPackets:
            // Packet 5 (the client's NOOP) gets an IPv4 header length of 4 words: 24 bytes of
            // file header, four records before it, its own record header and Ethernet header.
            let c = Self.plainSession()
            var bytes = c.pcap.bytes
            let offset = 24 + c.pcap.records.prefix(4).reduce(0) { $0 + $1.count } + 16 + 14
            #expect(bytes[offset] == 0x45)
            bytes[offset] = 0x44
            let url = dir.appendingPathComponent("corrupt.pcap")
            try Data(bytes).write(to: url)
            (arguments, status) = (["transcript", url.path], 1)
            expected = [.exact("smtptape: warning: \(url.path): packet 5: IPv4 header length 16 is under 20; 1 corrupt packet(s) skipped")]
        case .noSMTP:
            let path = try Self.httpCapture(in: dir)
            (arguments, status) = (["transcript", path], 1)
            expected = [.exact("smtptape: warning: \(path): no SMTP sessions found (4 packets, 1 TCP connections; ports 25, 465, 587, 2525 and --port are SMTP, and a 220 greeting on any port)")]
        case .checkProblems:
            let path = try Self.write("version: 1\nname: x\nsessions:\n- greeting: 220 hi\n  steps:\n  - client: NOOP\n    replly: 250 ok\n", "bad.yaml", in: dir)
            (arguments, status) = (["check", path], 1)
            // One line per problem, then the count.
            expected = [
                .exact("\(path):6:5: missing 'reply' (a step without a reply needs 'fault: drop', 'stall' or 'reset')"),
                .exact("\(path):7:5: unknown field 'replly'; did you mean 'reply'?"),
                .exact("smtptape: 2 problems in 1 file"),
            ]
        case .formatNotCanonical:
            let path = try Self.write("name: messy\nversion: 1\nsessions:\n- greeting: '220 hi'\n  steps:\n  - client: NOOP\n    reply: 250 ok\n", "messy.yaml", in: dir)
            (arguments, status, expected) = (["format", "--check", path], 1, [])
            stdout = "\(path): not in canonical form\n"
        case .missingFile:
            let path = dir.appendingPathComponent("absent.pcap").path
            (arguments, status, expected) = (["transcript", path], 2, [.exact("smtptape: \(path): no such file")])
        case .unreadableFile:
            #if os(Linux)
            // Opens, but every read fails (EIO). Mode 000 (below) means nothing to root.
            (arguments, status) = (["transcript", "/proc/self/mem"], 2)
            expected = [.exact("smtptape: /proc/self/mem: cannot open capture: error reading dump file: Input/output error")]
            if geteuid() != 0 {
                let locked = try Self.write("x", "locked.pcap", in: dir)
                chmod(locked, 0)
                let result = try cli.smtptape(["transcript", locked])
                #expect(result.status == 2)
                #expect(result.stderr == "smtptape: \(locked): permission denied\n")
            }
            #else
            let path = try Self.write("x", "locked.pcap", in: dir)
            chmod(path, 0)
            (arguments, status, expected) = (["transcript", path], 2, [.exact("smtptape: \(path): permission denied")])
            #endif
        case .notACapture:
            let path = try Self.write("hello, world\n", "notes.txt", in: dir)
            (arguments, status) = (["transcript", path], 2)
            expected = [.exact("smtptape: \(path): not a pcap or pcapng capture (libpcap: unknown file format)")]
        case .notAScenario:
            let path = try Self.write("ab\u{0}cd\n", "binary.yaml", in: dir)
            (arguments, status) = (["check", path], 2)
            expected = [.exact("\(path):1:3: not a scenario: a NUL byte (binary data, not YAML text)"), .exact("smtptape: 1 problem in 1 file")]
        case .outputFolderConflict:
            let capture = try Self.write(Self.plainSession().pcap, "plain.pcap", in: dir)
            let out = dir.appendingPathComponent("out")
            #expect(try cli.smtptape(["extract", capture, "-o", out.path]).status == 0)
            let existing = out.appendingPathComponent("plain-session-1.yaml").path
            (arguments, status) = (["extract", capture, "-o", out.path], 2)
            expected = [.exact("smtptape: \(existing) already exists; nothing was written (--force replaces existing files)")]
        case .unknownOption:
            // swift-argument-parser's report: the error, then usage (see the report of this run).
            (arguments, status) = (["transcript", "--no-such-flag", "x.pcap"], 64)
            expected = [
                .exact("Error: Unknown option '--no-such-flag'"),
                .around(prefix: "Usage: smtptape transcript <input> ...", suffix: ""),
                .exact("  See 'smtptape transcript --help' for more information."),
            ]
        case .badFilter:
            let path = try Self.write(Self.plainSession().pcap, "plain.pcap", in: dir)
            (arguments, status) = (["transcript", "--filter", "port twenty", path], 64)
            expected = [.exact("smtptape: \(path): bad --filter 'port twenty': unknown port 'twenty'")]
        case .threeProblemsThreeLines:
            let missing = dir.appendingPathComponent("absent.pcap").path
            let (damaged, _) = try Self.damagedCapture(in: dir)
            let http = try Self.httpCapture(in: dir)
            (arguments, status) = (["transcript", "--data", "none", missing, damaged, http], 2)
            expected = [
                .exact("smtptape: \(missing): no such file"),
                .around(prefix: "smtptape: \(damaged): packet 8: damaged record", suffix: "the packets before it were read"),
                .around(prefix: "smtptape: warning: \(http): no SMTP sessions found (4 packets", suffix: ")"),
            ]
        }
        let result = try cli.smtptape(arguments)
        #expect(result.status == status)
        let lines = Self.lines(result.stderr)
        #expect(lines.count == expected.count, "\(result.stderr)")
        for (line, want) in zip(lines, expected) {
            #expect(want.matches(line), "expected \(want), got \(line)")
        }
        #expect(result.stderr.isEmpty || result.stderr.hasSuffix("\n"))
        if let stdout { #expect(result.text == stdout) }
    }

    /// A damaged capture still gives everything before the damage.
    @Test func aDamagedCaptureStillWritesWhatCameBefore() throws {
        let dir = try Self.folder("damaged-output")
        defer { try? FileManager.default.removeItem(at: dir) }
        let (path, _) = try Self.damagedCapture(in: dir)
        let result = try cli.smtptape(["transcript", path])
        #expect(result.status == 1)
        #expect(result.text.contains("S: 250 2.0.0 Ok\n") && result.text.contains("C: QUIT\n"))
        #expect(!result.text.contains("221"))
        #expect(result.text.contains("  -- capture file damaged, session cut short\n"))
    }

    // MARK: --port and --filter

    /// On port 8025 (not SMTP's) the client speaks first: nothing to recognise without --port.
    @Test func portFindsASessionWithoutAGreeting() throws {
        let dir = try Self.folder("port")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation(server: .v4(192, 0, 2, 25, port: 8025))
        c.handshake()
        c.client("EHLO c\r\n")
        c.server("250 mx\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let path = try Self.write(c.pcap, "port.pcap", in: dir)
        let without = try cli.smtptape(["transcript", path])
        #expect(without.status == 1)
        #expect(without.text.isEmpty)
        #expect(without.stderr.contains("no SMTP sessions found (10 packets, 1 TCP connections;"))
        let with = try cli.smtptape(["transcript", "--port", "8025", path])
        #expect(with.status == 0)
        #expect(with.stderr.isEmpty)
        #expect(with.text.hasPrefix("== session 1: 192.0.2.1:40000 -> 192.0.2.25:8025, 2023-11-14T22:13:20.001000Z, 0.008 s (\(path))\n"))
        #expect(with.text.contains("C: EHLO c\n") && with.text.contains("S: 221 bye\n"))
    }

    /// A 220 greeting is recognised on any port; one that says FTP is not.
    @Test func aGreetingIsFoundOnAnyPortButFTPIsNot() throws {
        let dir = try Self.folder("greeting")
        defer { try? FileManager.default.removeItem(at: dir) }
        for (greeting, found) in [("220 mx.example.com ESMTP", true), ("220 ProFTPD Server ready", false)] {
            var c = Conversation(server: .v4(192, 0, 2, 25, port: 8025))
            c.handshake()
            c.server(greeting + "\r\n")
            c.client("QUIT\r\n")
            c.server("221 bye\r\n")
            c.close()
            let result = try cli.smtptape(["transcript", try Self.write(c.pcap, "g.pcap", in: dir)])
            #expect(result.status == (found ? 0 : 1))
            #expect(result.text.contains("S: \(greeting)\n") == found)
        }
    }

    @Test func filterKeepsOneOfTwoSessions() throws {
        let dir = try Self.folder("filter")
        defer { try? FileManager.default.removeItem(at: dir) }
        var a = Conversation()
        a.handshake()
        a.server("220 mx ESMTP\r\n")
        a.client("QUIT\r\n")
        a.server("221 bye\r\n")
        a.close()
        var b = Conversation(pcap: a.pcap, client: .v4(192, 0, 2, 7, port: 41000))
        b.handshake()
        b.server("220 mx ESMTP\r\n")
        b.client("QUIT\r\n")
        b.server("221 bye\r\n")
        b.close()
        let path = try Self.write(b.pcap, "two.pcap", in: dir)
        let all = try cli.smtptape(["transcript", "--data", "none", path])
        #expect(all.text.contains("== session 1: 192.0.2.1:40000 -> ") && all.text.contains("== session 2: 192.0.2.7:41000 -> "))
        let kept = try cli.smtptape(["transcript", "--filter", "host 192.0.2.7", path])
        #expect(kept.status == 0)
        #expect(kept.text.hasPrefix("== session 1: 192.0.2.7:41000 -> 192.0.2.25:25, "))
        #expect(!kept.text.contains("== session 2"))
        #expect(!kept.text.contains("192.0.2.1:"))
    }

    // MARK: --show-secrets

    /// AUTH PLAIN with its initial response (alice / secret), accepted.
    static func authCapture(in dir: URL) throws -> String {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
        c.server("235 2.7.0 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        return try write(c.pcap, "auth.pcap", in: dir)
    }

    @Test func showSecretsForTextJSONAndExtract() throws {
        let dir = try Self.folder("secrets")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.authCapture(in: dir)
        let secret = "AGFsaWNlAHNlY3JldA=="

        let hidden = try cli.smtptape(["transcript", path]).text
        #expect(hidden.contains("C: AUTH PLAIN [REDACTED]\n"))
        #expect(!hidden.contains(secret))
        #expect(hidden.contains("; AUTH PLAIN -> 235; "))
        let shown = try cli.smtptape(["transcript", "--show-secrets", path]).text
        #expect(shown.contains("C: AUTH PLAIN \(secret)\n"))

        let hiddenJSON = try json([path]).first { $0["verb"] == "AUTH" }
        #expect(hiddenJSON?["raw"] == Self.b64("AUTH PLAIN [REDACTED]\r\n"))
        #expect(hiddenJSON?["text"] == "AUTH PLAIN [REDACTED]")
        #expect(hiddenJSON?["redacted"] == true)
        let shownJSON = try json(["--show-secrets", path]).first { $0["verb"] == "AUTH" }
        #expect(shownJSON?["raw"] == Self.b64("AUTH PLAIN \(secret)\r\n"))
        #expect(shownJSON?["text"] == .string("AUTH PLAIN \(secret)"))
        #expect(shownJSON?["redacted"] == false)

        for (flags, name) in [([String](), "hidden"), (["--show-secrets"], "shown")] {
            let out = dir.appendingPathComponent(name)
            #expect(try cli.smtptape(["extract"] + flags + [path, "-o", out.path]).status == 0)
            let yaml = try String(contentsOf: out.appendingPathComponent("auth-session-1.yaml"), encoding: .utf8)
            #expect(yaml.contains(secret) == (name == "shown"))
            #expect(yaml.contains("[REDACTED]") == (name == "hidden"))
        }
    }

    /// `messages`, `check` and `format` have no --show-secrets: wrong arguments.
    @Test(arguments: ["messages", "check", "format"])
    func commandsWithoutShowSecretsRefuseIt(_ command: String) throws {
        let result = try cli.smtptape([command, "--show-secrets", "x"] + (command == "messages" ? ["-o", "/nonexistent-dir"] : []))
        #expect(result.status == 64)
        #expect(result.stderr.hasPrefix("Error: Unknown option '--show-secrets'\n"))
        #expect(!(try cli.smtptape([command, "--help"]).text.contains("--show-secrets")))
    }

    /// A lone `*` (cancel) in an AUTH exchange is kept.
    @Test func aCancelledAuthIsKept() throws {
        let dir = try Self.folder("cancel")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("AUTH LOGIN\r\n")
        c.server("334 VXNlcm5hbWU6\r\n")
        c.client("*\r\n")
        c.server("501 5.7.0 cancelled\r\n")
        c.close()
        let path = try Self.write(c.pcap, "cancel.pcap", in: dir)
        let auth = try json([path]).first { $0["type"] == "auth" }
        #expect(auth?["raw"] == Self.b64("*\r\n"))
        #expect(auth?["redacted"] == false)
    }

    // MARK: --data

    /// The message: a header section of 3 lines and a body of 4, one line dot-stuffed.
    ///   header:  "Subject: test\r\n" 15 + "From: a@b\r\n" 11 + "\r\n" 2        = 28 bytes
    ///   body:    "line one\r\n" 10 + ".two\r\n" 6 (sent as "..two") + "\r\n" 2 + "end\r\n" 5
    ///                                                                       = 23 bytes, 4 lines
    ///   message: 28 + 23 = 51 bytes, unstuffed.
    static func messageCapture(in dir: URL) throws -> String {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("MAIL FROM:<a@b>\r\n")
        c.server("250 ok\r\n")
        c.client("RCPT TO:<c@d>\r\n")
        c.server("250 ok\r\n")
        c.client("DATA\r\n")
        c.server("354 go ahead\r\n")
        c.client("Subject: test\r\nFrom: a@b\r\n\r\nline one\r\n..two\r\n\r\nend\r\n.\r\n")
        c.server("250 queued\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        return try write(c.pcap, "message.pcap", in: dir)
    }

    @Test func dataNoneHeadersAndFull() throws {
        let dir = try Self.folder("data")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.messageCapture(in: dir)
        let summary = "== summary: from <a@b> (250) to <c@d> (250); 1 message (51 bytes) -> 250; last reply 221\n"

        let none = try cli.smtptape(["transcript", "--data", "none", path]).text
        #expect(none.contains("  -- message 1: 51 bytes via DATA\n"))
        #expect(!none.contains("D: "))
        #expect(none.contains(summary))

        // The default is headers.
        for headers in [try cli.smtptape(["transcript", "--data", "headers", path]).text, try cli.smtptape(["transcript", path]).text] {
            let data = Self.lines(headers).filter { $0.contains("  D: ") || $0.contains("  -- message") }.map { String($0.dropFirst(12)) }
            #expect(data == ["D: Subject: test", "D: From: a@b", "D: ", "-- message 1 body: 4 lines, 23 bytes (--data full shows it)"])
            #expect(headers.contains(summary))
        }

        let full = try cli.smtptape(["transcript", "--data", "full", path]).text
        let data = Self.lines(full).filter { $0.contains("  D: ") || $0.contains("  -- message") }.map { String($0.dropFirst(12)) }
        #expect(data == ["D: Subject: test", "D: From: a@b", "D: ", "D: line one", "D: .two", "D: ", "D: end"])
        #expect(full.contains(summary))

        // JSON has all the data, dot-stuffed as sent, whatever --data says.
        let events = try json(["--data", "none", path])
        let sent = events.filter { $0["type"] == "data" }.compactMap { $0["raw"]?.string }.compactMap { Data(base64Encoded: $0) }.reduce(Data(), +)
        #expect(sent == Data("Subject: test\r\nFrom: a@b\r\n\r\nline one\r\n..two\r\n\r\nend\r\n".utf8))
        #expect(events.first { $0["type"] == "message_end" }?["size"] == 51)
    }

    /// BDAT: "BDAT 5\r\nhello" then "BDAT 3 LAST\r\n!!!" is one message of 5 + 3 = 8 bytes.
    @Test func dataNoneForBDAT() throws {
        let dir = try Self.folder("bdat")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("BDAT 5\r\nhello")
        c.server("250 2.0.0 5 octets\r\n")
        c.client("BDAT 3 LAST\r\n!!!")
        c.server("250 2.0.0 queued\r\n")
        c.close()
        let path = try Self.write(c.pcap, "bdat.pcap", in: dir)
        let text = try cli.smtptape(["transcript", "--data", "none", path]).text
        #expect(text.contains("  -- message 1: 8 bytes via BDAT\n"))
        #expect(text.contains("== summary: 1 message (8 bytes) -> 250; last reply 250\n"))
    }

    // MARK: --color

    @Test func colourOnlyWhenAsked() throws {
        let dir = try Self.folder("colour")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.messageCapture(in: dir)
        let always = try cli.smtptape(["transcript", "--color", "always", path]).text
        #expect(always.contains("\u{1B}[1m== session 1"))
        #expect(always.contains("\u{1B}[36mC: QUIT\u{1B}[0m\n"))
        // Standard output is a pipe here: auto is never.
        for choice in [["--color", "never"], ["--color", "auto"], []] {
            let text = try cli.smtptape(["transcript"] + choice + [path]).text
            #expect(!text.contains("\u{1B}"))
            #expect(text.contains("C: QUIT\n"))
        }
        #expect(try cli.smtptape(["transcript", "--color", "sometimes", path]).status == 64)
    }

    // MARK: extract --session

    @Test func extractSessionWarnsOfMissingNumbers() throws {
        let dir = try Self.folder("sessions")
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = try Self.write(Self.plainSession().pcap, "first.pcap", in: dir)
        let second = try Self.messageCapture(in: dir)
        let out = dir.appendingPathComponent("out")
        let result = try cli.smtptape(["extract", "--session", "5", "--session", "2", "--session", "3", first, second, "-o", out.path])
        #expect(result.status == 1)
        #expect(result.stderr == "smtptape: warning: --session 3, 5: no such session (the inputs held sessions 1 to 2)\n")
        #expect(result.text == out.appendingPathComponent("message-session-2.yaml").path + "\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["message-session-2.yaml"])
        let none = try cli.smtptape(["extract", "--session", "1", try Self.httpCapture(in: dir), "-o", dir.appendingPathComponent("none").path])
        #expect(none.status == 1)
        #expect(Self.lines(none.stderr).last == "smtptape: warning: --session 1: no such session (the input held no sessions)")
    }

    // MARK: Inputs and output names

    /// A scenario is told from a capture by its extension, or, whatever its name, by YAML that
    /// starts (after blank lines and comments) with `version:` or `---`.
    @Test(arguments: [
        "version: 1\nname: x\n",
        "# written by hand\n\nversion: 1\nname: x\n",
        "---\nname: x\nversion: 1\n",
    ])
    func aScenarioWithoutItsExtensionIsToldByItsFirstKey(head: String) throws {
        let dir = try Self.folder("kind")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.write(head + "sessions:\n- greeting: 220 hi\n  steps:\n  - client: NOOP\n    reply: 250 ok\n", "scenario.txt", in: dir)
        let result = try cli.smtptape(["transcript", path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text.contains("  C: NOOP\n") && result.text.contains("  S: 250 ok\n"))
    }

    /// Files are named after the capture, letters, digits, '.', '-' and '_' only, never hidden:
    /// a leading dot becomes '_'.
    @Test(arguments: [(".hidden.pcap", "_hidden-session-1.yaml"), ("..x.pcap", "_.x-session-1.yaml"), ("a b.pcap", "a_b-session-1.yaml")])
    func extractNamesAreNeverHidden(capture: String, written: String) throws {
        let dir = try Self.folder("names")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = try Self.write(Self.plainSession().pcap, capture, in: dir)
        let out = dir.appendingPathComponent("out")
        let result = try cli.smtptape(["extract", path, "-o", out.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.text == out.appendingPathComponent(written).path + "\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == [written])
    }

    /// A session the capture ends while its connection is open is marked `incomplete` even when
    /// every step got its reply (it was not seen to end); one that ended after QUIT's reply is not.
    @Test func extractMarksSessionsTheCaptureCutIncomplete() throws {
        let dir = try Self.folder("cut-open")
        defer { try? FileManager.default.removeItem(at: dir) }
        var open = Conversation()
        Self.openSession(&open)
        var quit = Conversation(client: .v4(192, 0, 2, 2, port: 40001))
        quit.handshake()
        quit.server("220 mx ESMTP\r\n")
        quit.client("QUIT\r\n")
        quit.server("221 bye\r\n")
        let out = dir.appendingPathComponent("out")
        #expect(try cli.smtptape(["extract", try Self.write(open.pcap, "open.pcap", in: dir), try Self.write(quit.pcap, "quit.pcap", in: dir), "-o", out.path]).status == 0)
        let cut = try String(contentsOf: out.appendingPathComponent("open-session-1.yaml"), encoding: .utf8)
        #expect(cut.contains("\n- incomplete: capture ended with the connection open\n"))
        let ended = try String(contentsOf: out.appendingPathComponent("quit-session-2.yaml"), encoding: .utf8)
        #expect(!ended.contains("incomplete"))
    }

    // MARK: Flags

    enum Flag: String, CaseIterable, CustomTestStringConvertible {
        case bare_lf, over_length, unterminated, no_space_after_code, not_a_reply, unsolicited, malformed, mixed_codes
        var testDescription: String { rawValue }

        /// A session holding one line that breaks the rule, the text line expected for it (the
        /// flags come last), and the JSON event type carrying the flag.
        var example: (build: (inout Conversation) -> Void, line: String, type: String) {
            switch self {
            case .bare_lf:
                return ({ c in c.server("220 mx\r\n"); c.client("NOOP\n"); c.server("250 ok\r\n") }, "C: NOOP  [bare_lf]", "command")
            case .over_length:
                // 5 + 600 + 2 = 607 octets, over the 512 of a command line.
                let long = "NOOP " + String(repeating: "x", count: 600)
                return ({ c in c.server("220 mx\r\n"); c.client(long + "\r\n"); c.server("250 ok\r\n") }, "C: \(long)  [over_length]", "command")
            case .unterminated:
                // A greeting without its line ending, then the client goes on.
                return ({ c in c.server("220 mx"); c.client("NOOP\r\n"); c.server("250 ok\r\n") }, "S: 220 mx  [unterminated]", "reply")
            case .no_space_after_code:
                return ({ c in c.server("220 mx\r\n"); c.client("NOOP\r\n"); c.server("250OK\r\n") }, "S: 250OK  [no_space_after_code]", "reply")
            case .not_a_reply:
                return ({ c in c.server("220 mx\r\n"); c.client("NOOP\r\n"); c.server("hello there\r\n"); c.server("250 ok\r\n") }, "S: hello there  [not_a_reply]", "reply")
            case .unsolicited:
                return ({ c in c.server("220 mx\r\n"); c.client("NOOP\r\n"); c.server("250 ok\r\n"); c.server("421 4.4.2 timeout\r\n") }, "S: 421 4.4.2 timeout  [unsolicited]", "reply")
            case .malformed:
                return ({ c in c.server("220 mx\r\n"); c.client("BDAT -1\r\n"); c.server("501 5.5.4 bad\r\n") }, "C: BDAT -1  [malformed]", "command")
            case .mixed_codes:
                return ({ c in c.server("220 mx\r\n"); c.client("EHLO c\r\n"); c.server("250-mx\r\n251 SIZE\r\n") }, "S: 251 SIZE  [mixed_codes]", "reply")
            }
        }
    }

    @Test(arguments: Flag.allCases)
    func flagsInTextAndJSON(_ flag: Flag) throws {
        let dir = try Self.folder("flag-\(flag.rawValue)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let example = flag.example
        var c = Conversation()
        c.handshake()
        example.build(&c)
        c.close()
        let path = try Self.write(c.pcap, "flag.pcap", in: dir)
        let text = try cli.smtptape(["transcript", path]).text
        let flagged = Self.lines(text).filter { $0.hasSuffix("]") && $0.contains("  [") }
        #expect(flagged.map { String($0.dropFirst(12)) } == [example.line])
        let events = try json([path])
        let withFlags = events.filter { ($0["flags"]?.array?.count ?? 0) > 0 }
        #expect(withFlags.count == 1)
        #expect(withFlags.first?["type"] == .string(example.type))
        #expect(withFlags.first?["flags"] == [.string(flag.rawValue)])
        // Everything else carries an empty list.
        for event in events where ["command", "reply", "auth"].contains(event["type"]?.string) {
            #expect(event["flags"]?.array != nil)
        }
    }

    /// A line that never ends is reported once past 1 MiB (1,048,576 bytes), flagged
    /// over_length and unterminated; its rest, up to the line ending, is a fragment. Here 32
    /// segments of 32,768 bytes fill exactly 1 MiB and one more byte passes it: the line is
    /// reported with 1,048,577 bytes; 99 more and CRLF make a fragment of 101.
    @Test func aLineThatNeverEnds() throws {
        let dir = try Self.folder("endless")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx\r\n")
        let chunk = [UInt8](repeating: 0x78, count: 32_768)
        for _ in 0..<32 { c.client(chunk) }
        c.client("x")
        c.client(String(repeating: "x", count: 99) + "\r\nQUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let events = try json([try Self.write(c.pcap, "endless.pcap", in: dir)])
        func size(_ event: JSON?) -> Int? { event?["raw"]?.string.flatMap { Data(base64Encoded: $0) }?.count }
        let flagged = events.filter { $0["flags"] == ["over_length", "unterminated"] }
        #expect(flagged.count == 1)
        #expect(flagged.first?["type"] == "command")
        #expect(size(flagged.first) == 1_048_577)
        let fragment = events.first { $0["type"] == "fragment" }
        #expect(fragment?["from"] == "client")
        #expect(size(fragment) == 101)
        #expect(events.contains { $0["verb"] == "QUIT" })
    }

    // MARK: Markers

    enum Marker: String, CaseIterable, CustomTestStringConvertible {
        case tlsEncrypted, implicitTLS, startTLSPlaintext, gap, messageIncomplete, clientFragment, serverFragment
        case closedByClient, closedByServer, resetByClient, resetByServer, captureEnded, idle, replaced, fileDamaged
        var testDescription: String { rawValue }
    }

    /// Each `--` line (and `C?`/`S?` line) of a text transcript, from a capture that calls for it;
    /// for the ends of connections, the JSON `reason` too.
    @Test(arguments: Marker.allCases)
    func markerLines(_ marker: Marker) throws {
        let dir = try Self.folder("marker-\(marker.rawValue)")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        var arguments: [String] = []
        let expected: [String]
        var reason: String?
        var damaged = false
        switch marker {
        case .tlsEncrypted:
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.client("STARTTLS\r\n")
            c.server("220 2.0.0 Ready\r\n")
            c.client([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00])
            c.server([0x16, 0x03, 0x03, 0x00, 0x01, 0x02])
            c.close()
            expected = ["-- TLS started (STARTTLS): the rest of the session is encrypted", "-- connection closed by the client"]
            reason = "closed_by_client"
        case .implicitTLS:
            c = Conversation(server: .v4(192, 0, 2, 25, port: 465))
            c.handshake()
            c.client([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00])
            c.server([0x16, 0x03, 0x03, 0x00, 0x01, 0x02])
            c.close()
            expected = ["-- implicit TLS: the session is encrypted from the start", "-- connection closed by the client"]
        case .startTLSPlaintext:
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.client("STARTTLS\r\n")
            c.server("220 2.0.0 Ready\r\n")
            c.client("QUIT\r\n")
            c.server("221 bye\r\n")
            c.close()
            expected = ["-- STARTTLS accepted, but no TLS followed: the session goes on in plaintext", "-- connection closed by the client"]
        case .gap:
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.lostClient("NOOP\r\n")
            c.client("QUIT\r\n")
            c.server("250 ok\r\n221 bye\r\n")
            c.close()
            expected = ["-- gap: 6 client bytes missing from the capture", "-- connection closed by the client"]
        case .messageIncomplete:
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.client("DATA\r\n")
            c.server("354 go ahead\r\n")
            c.client("Subject: x\r\n")
            Self.resetByClient(&c)
            arguments = ["--data", "full"]
            expected = ["-- message 1 incomplete", "-- connection reset by the client"]
        case .clientFragment:
            // "NO" of "NOOP\r\n" is lost; "OP" is the unreadable rest of the line.
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.lostClient("NO")
            c.client("OP\r\n")
            c.server("250 ok\r\n")
            c.client("QUIT\r\n")
            c.server("221 bye\r\n")
            c.close()
            // After a client gap, before a known command, the rest of a cut line may be a credential.
            expected = ["-- gap: 2 client bytes missing from the capture", "C? [REDACTED]", "-- connection closed by the client"]
        case .serverFragment:
            c.handshake()
            c.server("220 mx ESMTP\r\n")
            c.client("NOOP\r\n")
            c.lostServer("25")
            c.server("0 ok\r\n")
            c.client("QUIT\r\n")
            c.server("221 bye\r\n")
            c.close()
            expected = ["-- gap: 2 server bytes missing from the capture", "S? 0 ok", "-- connection closed by the client"]
        case .closedByClient:
            c = Self.plainSession()
            expected = ["-- connection closed by the client"]
            reason = "closed_by_client"
        case .closedByServer:
            Self.openSession(&c)
            c.closeByServer()
            expected = ["-- connection closed by the server"]
            reason = "closed_by_server"
        case .resetByClient:
            Self.openSession(&c)
            Self.resetByClient(&c)
            expected = ["-- connection reset by the client"]
            reason = "reset_by_client"
        case .resetByServer:
            Self.openSession(&c)
            Self.resetByServer(&c)
            expected = ["-- connection reset by the server"]
            reason = "reset_by_server"
        case .captureEnded:
            Self.openSession(&c)
            expected = ["-- capture ended with the connection open"]
            reason = "capture_ended"
        case .idle:
            // A second connection 601 s of capture time later: the first is flushed as idle.
            Self.openSession(&c)
            var second = Conversation(pcap: c.pcap, client: .v4(192, 0, 2, 2, port: 40001))
            Self.handshake(&second, after: 601_000_000)
            second.server("220 mx ESMTP\r\n")
            second.client("QUIT\r\n")
            second.server("221 bye\r\n")
            second.close()
            c.pcap = second.pcap
            expected = ["-- connection idle, flushed", "-- connection closed by the client"]
            reason = "idle_timeout"
        case .replaced:
            // A new SYN (another initial sequence number) on the same addresses and ports.
            Self.openSession(&c)
            var second = Conversation(pcap: c.pcap, clientISN: 90_000, serverISN: 70_000)
            second.handshake()
            second.server("220 mx ESMTP\r\n")
            second.client("QUIT\r\n")
            second.server("221 bye\r\n")
            second.close()
            c.pcap = second.pcap
            expected = ["-- a new connection on the same addresses and ports began", "-- connection closed by the client"]
            reason = "replaced"
        case .fileDamaged:
            Self.openSession(&c)
            c.client("QUIT\r\n")
            c.pcap.damageLastRecordLength()
            expected = ["-- capture file damaged, session cut short"]
            reason = "file_damaged"
            damaged = true
        }
        let path = try Self.write(c.pcap, "marker.pcap", in: dir)
        let result = try cli.smtptape(["transcript"] + arguments + [path])
        #expect(result.status == (damaged ? 1 : 0), "\(result.stderr)")
        // Marker and fragment lines, in order, without their times.
        let found = Self.lines(result.text).filter { $0.count > 12 && ($0.dropFirst(12).hasPrefix("-- ") || $0.dropFirst(12).hasPrefix("C? ") || $0.dropFirst(12).hasPrefix("S? ")) }
        #expect(found.map { String($0.dropFirst(12)) } == expected)
        if let reason {
            let run = try cli.smtptape(["transcript", "--format", "json", path])
            let ends = try Self.lines(run.text).map { try JSON.parse($0) }.filter { $0["type"] == "session_end" }
            #expect(ends.first?["reason"] == .string(reason))
        }
    }

    /// A message cut short (the client resets after "Subject: x\r\n", 12 bytes, still in the
    /// header section: no body line yet) in each --data mode.
    @Test func anIncompleteMessageInEachDataMode() throws {
        let dir = try Self.folder("incomplete")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("DATA\r\n")
        c.server("354 go ahead\r\n")
        c.client("Subject: x\r\n")
        Self.resetByClient(&c)
        let path = try Self.write(c.pcap, "cut.pcap", in: dir)
        for (mode, line) in [("full", "-- message 1 incomplete"), ("headers", "-- message 1 body: 0 lines, 0 bytes (--data full shows it); incomplete"), ("none", "-- message 1: 12 bytes via DATA, incomplete")] {
            let text = try cli.smtptape(["transcript", "--data", mode, path]).text
            #expect(text.contains("  \(line)\n"), "\(mode)")
            #expect(text.contains("  D: Subject: x\n") == (mode != "none"))
            #expect(text.contains("== summary: 0 messages; last reply 354\n"))
        }
    }

    /// Bytes that are not printable UTF-8 are shown as `\xNN`; printable UTF-8 as it is.
    @Test func unprintableBytesAreEscaped() throws {
        let dir = try Self.folder("escapes")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server(Array("220 mx caf\u{E9} ".utf8) + [0x01, 0xFF, 0x7F, 0x0D, 0x0A])
        c.close()
        let text = try cli.smtptape(["transcript", try Self.write(c.pcap, "bytes.pcap", in: dir)]).text
        #expect(text.contains("  S: 220 mx caf\u{E9} \\x01\\xFF\\x7F\n"))
    }

    /// C1 controls (U+0080 to U+009F: terminals act on them) are escaped byte by byte; the next
    /// character, U+00A0, is printable.
    @Test func c1ControlsAreEscaped() throws {
        let dir = try Self.folder("c1")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server(Array("220 mx ".utf8) + [0xC2, 0x80, 0x20, 0xC2, 0x9B, 0x20, 0xC2, 0x9F, 0x20, 0xC2, 0xA0, 0x0D, 0x0A])
        c.close()
        let text = try cli.smtptape(["transcript", try Self.write(c.pcap, "c1.pcap", in: dir)]).text
        #expect(text.contains("  S: 220 mx \\xC2\\x80 \\xC2\\x9B \\xC2\\x9F \u{A0}\n"))
    }

    /// A message line cut by a gap is shown up to the gap; what follows the gap is not joined to it.
    @Test func aMessageLineCutByAGapIsNotJoined() throws {
        let dir = try Self.folder("cut-line")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("DATA\r\n")
        c.server("354 go ahead\r\n")
        c.client("Subject: x\r\n\r\nline one\r\nline t")
        c.lostClient("wo\r\nline t")
        c.client("hree\r\nline four\r\n.\r\n")
        c.server("250 queued\r\n")
        c.close()
        let text = try cli.smtptape(["transcript", "--data", "full", try Self.write(c.pcap, "cut.pcap", in: dir)]).text
        let lines = Self.lines(text).map { $0.count > 12 ? String($0.dropFirst(12)) : $0 }
        let data = lines.filter { $0.hasPrefix("D: ") || $0.hasPrefix("C? ") || $0.hasPrefix("-- gap") }
        #expect(data == ["D: Subject: x", "D: ", "D: line one", "D: line t", "-- gap: 10 client bytes missing from the capture", "C? hree", "D: line four"])
    }

    /// Scenarios give TLS in the clear.
    @Test func decryptedTLSFromAScenario() throws {
        let scenario = Fixtures.root.appendingPathComponent("Scenarios/starttls-required.yaml").path
        let text = try cli.smtptape(["transcript", scenario]).text
        #expect(text.contains("  -- TLS started (STARTTLS): the dialogue inside TLS follows, in the clear\n"))
        let events = try json([scenario])
        let start = try #require(events.first { $0["type"] == "tls_start" })
        #expect(Set(start.keys) == ["session", "time", "type", "mode", "state", "version", "cipher_suite"])
        #expect(start["session"] == 2)
        #expect(start["mode"] == "starttls")
        #expect(start["state"] == "decrypted")
        #expect(start["version"] == .null)
        #expect(start["cipher_suite"] == .null)
        let end = try #require(events.last)
        #expect(end["tls"] == "starttls")
        #expect(end["tls_state"] == "decrypted")
    }

    // MARK: JSON Lines, field by field

    static let sessionEndKeys: Set<String> = ["session", "time", "type", "reason", "duration", "mail_from", "rcpt_to", "messages", "message_bytes", "last_reply", "auth", "tls", "tls_state", "encrypted_bytes", "gap_bytes"]

    /// A whole session: EHLO, AUTH LOGIN with an initial response, MAIL, two RCPT (one refused),
    /// DATA with a dot-stuffed line, QUIT, closed by the client. One packet a millisecond:
    /// packets 1-3 are the handshake, 4-22 the dialogue, 23-25 the close (the server's FIN, packet
    /// 24, ends the session: 24 - 1 = 23 ms).
    @Test func jsonEveryFieldOfAFullSession() throws {
        let dir = try Self.folder("json-full")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()                                                            // 1, 2, 3
        c.server("220 mx.example.com ESMTP\r\n")                                 // 4
        c.client("EHLO client.example.com\r\n")                                  // 5
        c.server("250-mx.example.com\r\n250 AUTH LOGIN\r\n")                     // 6
        c.client("AUTH LOGIN YWxpY2U=\r\n")                                      // 7
        c.server("334 UGFzc3dvcmQ6\r\n")                                         // 8
        c.client("c2VjcmV0\r\n")                                                 // 9
        c.server("235 2.7.0 Authentication successful\r\n")                      // 10
        c.client("MAIL FROM:<alice@example.com>\r\n")                            // 11
        c.server("250 2.1.0 Ok\r\n")                                             // 12
        c.client("RCPT TO:<bob@example.net>\r\n")                                // 13
        c.server("250 2.1.5 Ok\r\n")                                             // 14
        c.client("RCPT TO:<nobody@example.net>\r\n")                             // 15
        c.server("550 5.1.1 <nobody@example.net>: Recipient address rejected\r\n")  // 16
        c.client("DATA\r\n")                                                     // 17
        c.server("354 End data with <CR><LF>.<CR><LF>\r\n")                      // 18
        // 13 + 2 + 7 + 6 = 28 bytes sent; unstuffed 13 + 2 + 6 + 6 = 27.
        c.client("Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n")                   // 19
        c.server("250 2.0.0 Ok: queued as 1234\r\n")                             // 20
        c.client("QUIT\r\n")                                                     // 21
        c.server("221 2.0.0 Bye\r\n")                                            // 22
        c.close()                                                                // 23, 24, 25
        let path = try Self.write(c.pcap, "full.pcap", in: dir)
        let expected: [JSON] = [
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "session_start", "client": "192.0.2.1:40000", "server": "192.0.2.25:25", "file": .string(path), "handshake": true],
            ["session": 1, "time": "2023-11-14T22:13:20.004000Z", "type": "reply", "from": "server", "raw": Self.b64("220 mx.example.com ESMTP\r\n"), "code": 220, "lines": ["mx.example.com ESMTP"], "answers": "greeting", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.005000Z", "type": "command", "from": "client", "raw": Self.b64("EHLO client.example.com\r\n"), "verb": "EHLO", "text": "EHLO client.example.com", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.006000Z", "type": "reply", "from": "server", "raw": Self.b64("250-mx.example.com\r\n250 AUTH LOGIN\r\n"), "code": 250, "lines": ["mx.example.com", "AUTH LOGIN"], "answers": "EHLO", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.007000Z", "type": "command", "from": "client", "raw": Self.b64("AUTH LOGIN [REDACTED]\r\n"), "verb": "AUTH", "text": "AUTH LOGIN [REDACTED]", "redacted": true, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "reply", "from": "server", "raw": Self.b64("334 UGFzc3dvcmQ6\r\n"), "code": 334, "lines": ["UGFzc3dvcmQ6"], "answers": "AUTH", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.009000Z", "type": "auth", "from": "client", "raw": Self.b64("[REDACTED]\r\n"), "text": "[REDACTED]", "redacted": true, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.010000Z", "type": "reply", "from": "server", "raw": Self.b64("235 2.7.0 Authentication successful\r\n"), "code": 235, "lines": ["2.7.0 Authentication successful"], "enhanced_code": "2.7.0", "answers": "auth", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.011000Z", "type": "command", "from": "client", "raw": Self.b64("MAIL FROM:<alice@example.com>\r\n"), "verb": "MAIL", "text": "MAIL FROM:<alice@example.com>", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.012000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.1.0 Ok\r\n"), "code": 250, "lines": ["2.1.0 Ok"], "enhanced_code": "2.1.0", "answers": "MAIL", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.013000Z", "type": "command", "from": "client", "raw": Self.b64("RCPT TO:<bob@example.net>\r\n"), "verb": "RCPT", "text": "RCPT TO:<bob@example.net>", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.014000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.1.5 Ok\r\n"), "code": 250, "lines": ["2.1.5 Ok"], "enhanced_code": "2.1.5", "answers": "RCPT", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.015000Z", "type": "command", "from": "client", "raw": Self.b64("RCPT TO:<nobody@example.net>\r\n"), "verb": "RCPT", "text": "RCPT TO:<nobody@example.net>", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.016000Z", "type": "reply", "from": "server", "raw": Self.b64("550 5.1.1 <nobody@example.net>: Recipient address rejected\r\n"), "code": 550, "lines": ["5.1.1 <nobody@example.net>: Recipient address rejected"], "enhanced_code": "5.1.1", "answers": "RCPT", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.017000Z", "type": "command", "from": "client", "raw": Self.b64("DATA\r\n"), "verb": "DATA", "text": "DATA", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.018000Z", "type": "reply", "from": "server", "raw": Self.b64("354 End data with <CR><LF>.<CR><LF>\r\n"), "code": 354, "lines": ["End data with <CR><LF>.<CR><LF>"], "answers": "DATA", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.019000Z", "type": "data", "from": "client", "raw": Self.b64("Subject: hi\r\n\r\n..dot\r\nbody\r\n"), "message": 1, "via": "DATA"],
            ["session": 1, "time": "2023-11-14T22:13:20.019000Z", "type": "message_end", "from": "client", "raw": Self.b64(".\r\n"), "message": 1, "via": "DATA", "size": 27, "complete": true],
            ["session": 1, "time": "2023-11-14T22:13:20.020000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.0.0 Ok: queued as 1234\r\n"), "code": 250, "lines": ["2.0.0 Ok: queued as 1234"], "enhanced_code": "2.0.0", "answers": "message", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.021000Z", "type": "command", "from": "client", "raw": Self.b64("QUIT\r\n"), "verb": "QUIT", "text": "QUIT", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.022000Z", "type": "reply", "from": "server", "raw": Self.b64("221 2.0.0 Bye\r\n"), "code": 221, "lines": ["2.0.0 Bye"], "enhanced_code": "2.0.0", "answers": "QUIT", "flags": []],
            [
                "session": 1, "time": "2023-11-14T22:13:20.024000Z", "type": "session_end", "reason": "closed_by_client", "duration": 0.023,
                "mail_from": [["address": "alice@example.com", "code": 250]],
                "rcpt_to": [["address": "bob@example.net", "code": 250], ["address": "nobody@example.net", "code": 550]],
                "messages": 1, "message_bytes": 27, "last_reply": 221, "auth": ["mechanism": "LOGIN", "code": 235],
                "tls": .null, "tls_state": .null, "encrypted_bytes": ["client": 0, "server": 0], "gap_bytes": 0,
            ],
        ]
        let events = try json([path])
        #expect(events.count == expected.count)
        for (event, want) in zip(events, expected) { #expect(event == want) }
        #expect(Set(events.last?.keys ?? []) == Self.sessionEndKeys)
    }

    /// A gap in the client's bytes (the end of a NOOP and the start of another), the fragment
    /// it leaves, and two 250s that cannot answer the QUIT waiting: each answers a command the gap
    /// swallowed. Closed by the server: packet 10 is the client's FIN, 10 - 1 = 9 ms.
    @Test func jsonGapFragmentAndLostCommands() throws {
        let dir = try Self.folder("json-gap")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()                                              // 1, 2, 3
        c.server("220 mx ESMTP\r\n")                               // 4
        c.client("NOOP\r\n")                                       // 5
        c.server("250 2.0.0 Ok\r\n")                               // 6
        c.lostClient("NOOP\r\nNO")                                 // 8 bytes the capture missed
        c.client("OP\r\nQUIT\r\n")                                 // 7: waits behind the hole
        c.server("250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n")  // 8: acknowledges past it
        c.closeByServer()                                          // 9, 10, 11
        let path = try Self.write(c.pcap, "gap.pcap", in: dir)
        let expected: [JSON] = [
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "session_start", "client": "192.0.2.1:40000", "server": "192.0.2.25:25", "file": .string(path), "handshake": true],
            ["session": 1, "time": "2023-11-14T22:13:20.004000Z", "type": "reply", "from": "server", "raw": Self.b64("220 mx ESMTP\r\n"), "code": 220, "lines": ["mx ESMTP"], "answers": "greeting", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.005000Z", "type": "command", "from": "client", "raw": Self.b64("NOOP\r\n"), "verb": "NOOP", "text": "NOOP", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.006000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.0.0 Ok\r\n"), "code": 250, "lines": ["2.0.0 Ok"], "enhanced_code": "2.0.0", "answers": "NOOP", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "gap", "from": "client", "bytes": 8],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "fragment", "from": "client", "raw": Self.b64("[REDACTED]\r\n"), "text": "[REDACTED]", "redacted": true],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "command", "from": "client", "raw": Self.b64("QUIT\r\n"), "verb": "QUIT", "text": "QUIT", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.0.0 Ok\r\n"), "code": 250, "lines": ["2.0.0 Ok"], "enhanced_code": "2.0.0", "answers": "unknown", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.0.0 Ok\r\n"), "code": 250, "lines": ["2.0.0 Ok"], "enhanced_code": "2.0.0", "answers": "unknown", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "reply", "from": "server", "raw": Self.b64("221 2.0.0 Bye\r\n"), "code": 221, "lines": ["2.0.0 Bye"], "enhanced_code": "2.0.0", "answers": "QUIT", "flags": []],
            [
                "session": 1, "time": "2023-11-14T22:13:20.010000Z", "type": "session_end", "reason": "closed_by_server", "duration": 0.009,
                "mail_from": [], "rcpt_to": [], "messages": 0, "message_bytes": 0, "last_reply": 221, "auth": .null,
                "tls": .null, "tls_state": .null, "encrypted_bytes": ["client": 0, "server": 0], "gap_bytes": 8,
            ],
        ]
        let events = try json([path])
        #expect(events.count == expected.count)
        for (event, want) in zip(events, expected) { #expect(event == want) }
        let text = try cli.smtptape(["transcript", path]).text
        #expect(text.contains("== summary: 0 messages; 8 bytes missing; last reply 221\n"))
    }

    /// STARTTLS accepted, then TLS records (7 client bytes, 6 server bytes): TLS starts where the
    /// server's 220 accepted it (packet 6); nothing after is parsed. Closed by the server: packet
    /// 10 is the client's FIN, 10 - 1 = 9 ms.
    @Test func jsonEncryptedTLS() throws {
        let dir = try Self.folder("json-tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()                                              // 1, 2, 3
        c.server("220 mx ESMTP\r\n")                               // 4
        c.client("STARTTLS\r\n")                                   // 5
        c.server("220 2.0.0 Ready to start TLS\r\n")               // 6
        c.client([0x16, 0x03, 0x01, 0x00, 0x02, 0x01, 0x00])       // 7
        c.server([0x16, 0x03, 0x03, 0x00, 0x01, 0x02])             // 8
        c.closeByServer()                                          // 9, 10, 11
        let path = try Self.write(c.pcap, "tls.pcap", in: dir)
        let expected: [JSON] = [
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "session_start", "client": "192.0.2.1:40000", "server": "192.0.2.25:25", "file": .string(path), "handshake": true],
            ["session": 1, "time": "2023-11-14T22:13:20.004000Z", "type": "reply", "from": "server", "raw": Self.b64("220 mx ESMTP\r\n"), "code": 220, "lines": ["mx ESMTP"], "answers": "greeting", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.005000Z", "type": "command", "from": "client", "raw": Self.b64("STARTTLS\r\n"), "verb": "STARTTLS", "text": "STARTTLS", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.006000Z", "type": "reply", "from": "server", "raw": Self.b64("220 2.0.0 Ready to start TLS\r\n"), "code": 220, "lines": ["2.0.0 Ready to start TLS"], "enhanced_code": "2.0.0", "answers": "STARTTLS", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.006000Z", "type": "tls_start", "mode": "starttls", "state": "encrypted"],
            [
                "session": 1, "time": "2023-11-14T22:13:20.010000Z", "type": "session_end", "reason": "closed_by_server", "duration": 0.009,
                "mail_from": [], "rcpt_to": [], "messages": 0, "message_bytes": 0, "last_reply": 220, "auth": .null,
                "tls": "starttls", "tls_state": "encrypted", "encrypted_bytes": ["client": 7, "server": 6], "gap_bytes": 0,
            ],
        ]
        let events = try json([path])
        #expect(events.count == expected.count)
        for (event, want) in zip(events, expected) { #expect(event == want) }
        let text = try cli.smtptape(["transcript", path]).text
        #expect(text.contains("== summary: 0 messages; STARTTLS, 7/6 encrypted bytes client/server; last reply 220\n"))
    }

    /// A capture that began mid-session (no handshake) with one BDAT message of 5 bytes, and
    /// ended with the connection open: 2 packets, 2 - 1 = 1 ms.
    @Test func jsonBDATWithoutHandshake() throws {
        let dir = try Self.folder("json-bdat")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.client("BDAT 5 LAST\r\nhello")                 // 1
        c.server("250 2.0.0 Ok\r\n")                     // 2
        let path = try Self.write(c.pcap, "bdat.pcap", in: dir)
        let expected: [JSON] = [
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "session_start", "client": "192.0.2.1:40000", "server": "192.0.2.25:25", "file": .string(path), "handshake": false],
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "command", "from": "client", "raw": Self.b64("BDAT 5 LAST\r\n"), "verb": "BDAT", "text": "BDAT 5 LAST", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "data", "from": "client", "raw": Self.b64("hello"), "message": 1, "via": "BDAT"],
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "message_end", "from": "client", "message": 1, "via": "BDAT", "size": 5, "complete": true],
            ["session": 1, "time": "2023-11-14T22:13:20.002000Z", "type": "reply", "from": "server", "raw": Self.b64("250 2.0.0 Ok\r\n"), "code": 250, "lines": ["2.0.0 Ok"], "enhanced_code": "2.0.0", "answers": "BDAT", "flags": []],
            [
                "session": 1, "time": "2023-11-14T22:13:20.002000Z", "type": "session_end", "reason": "capture_ended", "duration": 0.001,
                "mail_from": [], "rcpt_to": [], "messages": 1, "message_bytes": 5, "last_reply": 250, "auth": .null,
                "tls": .null, "tls_state": .null, "encrypted_bytes": ["client": 0, "server": 0], "gap_bytes": 0,
            ],
        ]
        let events = try json([path])
        #expect(events.count == expected.count)
        for (event, want) in zip(events, expected) { #expect(event == want) }
        let text = try cli.smtptape(["transcript", path]).text
        #expect(text.hasPrefix("== session 1: 192.0.2.1:40000 -> 192.0.2.25:25, 2023-11-14T22:13:20.001000Z, 0.001 s (\(path)) [began before the capture]\n"))
    }

    /// A message the client's reset cut short (12 bytes: "Subject: x\r\n"): complete false, no
    /// `.` line; the session ends at the reset, packet 9: 9 - 1 = 8 ms. A server line that is not
    /// a reply has `code` null; one with nothing waiting has no `answers`.
    @Test func jsonIncompleteMessageAndRepliesWithoutCodeOrCommand() throws {
        let dir = try Self.folder("json-cut")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()                                          // 1, 2, 3
        c.server("220 mx ESMTP\r\n")                           // 4
        c.server("* hello\r\n")                                // 5
        c.client("DATA\r\n")                                   // 6
        c.server("354 go ahead\r\n")                           // 7
        c.client("Subject: x\r\n")                             // 8
        Self.resetByClient(&c)                                 // 9
        let path = try Self.write(c.pcap, "cut.pcap", in: dir)
        let expected: [JSON] = [
            ["session": 1, "time": "2023-11-14T22:13:20.001000Z", "type": "session_start", "client": "192.0.2.1:40000", "server": "192.0.2.25:25", "file": .string(path), "handshake": true],
            ["session": 1, "time": "2023-11-14T22:13:20.004000Z", "type": "reply", "from": "server", "raw": Self.b64("220 mx ESMTP\r\n"), "code": 220, "lines": ["mx ESMTP"], "answers": "greeting", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.005000Z", "type": "reply", "from": "server", "raw": Self.b64("* hello\r\n"), "code": .null, "lines": ["* hello"], "flags": ["not_a_reply"]],
            ["session": 1, "time": "2023-11-14T22:13:20.006000Z", "type": "command", "from": "client", "raw": Self.b64("DATA\r\n"), "verb": "DATA", "text": "DATA", "redacted": false, "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.007000Z", "type": "reply", "from": "server", "raw": Self.b64("354 go ahead\r\n"), "code": 354, "lines": ["go ahead"], "answers": "DATA", "flags": []],
            ["session": 1, "time": "2023-11-14T22:13:20.008000Z", "type": "data", "from": "client", "raw": Self.b64("Subject: x\r\n"), "message": 1, "via": "DATA"],
            ["session": 1, "time": "2023-11-14T22:13:20.009000Z", "type": "message_end", "from": "client", "message": 1, "via": "DATA", "size": 12, "complete": false],
            [
                "session": 1, "time": "2023-11-14T22:13:20.009000Z", "type": "session_end", "reason": "reset_by_client", "duration": 0.008,
                "mail_from": [], "rcpt_to": [], "messages": 0, "message_bytes": 0, "last_reply": 354, "auth": .null,
                "tls": .null, "tls_state": .null, "encrypted_bytes": ["client": 0, "server": 0], "gap_bytes": 0,
            ],
        ]
        let events = try json([path])
        #expect(events.count == expected.count)
        for (event, want) in zip(events, expected) { #expect(event == want) }
    }

    /// An enhanced status code belongs to a reply: a server line without a reply code has none,
    /// whatever its text starts with.
    @Test func jsonNoEnhancedCodeWithoutAReplyCode() throws {
        let dir = try Self.folder("json-enhanced")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.server("2.0.0 not a reply\r\n")
        c.client("NOOP\r\n")
        c.server("250 2.0.0 Ok\r\n")
        c.close()
        let replies = try json([try Self.write(c.pcap, "enhanced.pcap", in: dir)]).filter { $0["type"] == "reply" }
        #expect(replies.map { $0.keys.contains("enhanced_code") } == [false, false, true])
        #expect(replies.last?["enhanced_code"] == "2.0.0")
        #expect(replies.map { $0["code"] } == [220, .null, 250])
    }

    /// IPv6 endpoints are written `[ADDR]:PORT`.
    @Test func jsonIPv6Endpoints() throws {
        let dir = try Self.folder("json-v6")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation(client: .v6(last: 1, port: 40000), server: .v6(last: 0x19, port: 25))
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.close()
        let start = try #require(try json([try Self.write(c.pcap, "v6.pcap", in: dir)]).first)
        #expect(start["client"] == "[2001:db8::1]:40000")
        #expect(start["server"] == "[2001:db8::19]:25")
    }
}

// MARK: - JSON with its types

/// A JSON value as written, types kept apart (`true` is not `1`, `1` is not `1.0`), parsed strictly.
indirect enum JSON: Equatable, CustomStringConvertible, Sendable,
    ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    init(stringLiteral value: String) { self = .string(value) }
    init(integerLiteral value: Int) { self = .int(value) }
    init(floatLiteral value: Double) { self = .double(value) }
    init(booleanLiteral value: Bool) { self = .bool(value) }
    init(arrayLiteral elements: JSON...) { self = .array(elements) }
    init(dictionaryLiteral elements: (String, JSON)...) { self = .object(Dictionary(uniqueKeysWithValues: elements)) }
    init(nilLiteral: ()) { self = .null }

    subscript(key: String) -> JSON? {
        if case .object(let members) = self { return members[key] }
        return nil
    }

    var keys: [String] {
        if case .object(let members) = self { return Array(members.keys) }
        return []
    }

    var string: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    var array: [JSON]? {
        if case .array(let value) = self { return value }
        return nil
    }

    var description: String {
        switch self {
        case .null: "null"
        case .bool(let value): "\(value)"
        case .int(let value): "\(value)"
        case .double(let value): "\(value)"
        case .string(let value): "\"\(value)\""
        case .array(let values): "[" + values.map(\.description).joined(separator: ",") + "]"
        case .object(let members): "{" + members.sorted { $0.key < $1.key }.map { "\"\($0.key)\":\($0.value)" }.joined(separator: ",") + "}"
        }
    }

    struct ParseError: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> JSON {
        var parser = Parser(bytes: Array(text.utf8))
        let value = try parser.value()
        parser.skipSpace()
        guard parser.index == parser.bytes.count else { throw ParseError(description: "trailing bytes in \(text)") }
        return value
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        mutating func skipSpace() {
            while index < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[index]) { index += 1 }
        }

        mutating func expect(_ literal: String) throws {
            let literal = Array(literal.utf8)
            guard bytes.count - index >= literal.count, Array(bytes[index..<(index + literal.count)]) == literal else {
                throw ParseError(description: "expected \(String(decoding: literal, as: UTF8.self)) at \(index)")
            }
            index += literal.count
        }

        mutating func value() throws -> JSON {
            skipSpace()
            guard index < bytes.count else { throw ParseError(description: "unexpected end") }
            switch bytes[index] {
            case 0x7B:
                index += 1
                var members: [String: JSON] = [:]
                skipSpace()
                if bytes[index] == 0x7D { index += 1; return .object(members) }
                while true {
                    skipSpace()
                    let key = try string()
                    guard members[key] == nil else { throw ParseError(description: "key \(key) written twice") }
                    skipSpace()
                    try expect(":")
                    members[key] = try value()
                    skipSpace()
                    if bytes[index] == 0x2C { index += 1; continue }
                    try expect("}")
                    return .object(members)
                }
            case 0x5B:
                index += 1
                var values: [JSON] = []
                skipSpace()
                if bytes[index] == 0x5D { index += 1; return .array(values) }
                while true {
                    values.append(try value())
                    skipSpace()
                    if bytes[index] == 0x2C { index += 1; continue }
                    try expect("]")
                    return .array(values)
                }
            case 0x22:
                return .string(try string())
            case 0x74:
                try expect("true")
                return .bool(true)
            case 0x66:
                try expect("false")
                return .bool(false)
            case 0x6E:
                try expect("null")
                return .null
            default:
                let start = index
                while index < bytes.count, "+-0123456789.eE".utf8.contains(bytes[index]) { index += 1 }
                let text = String(decoding: bytes[start..<index], as: UTF8.self)
                if text.contains(where: { ".eE".contains($0) }) {
                    guard let value = Double(text) else { throw ParseError(description: "bad number \(text)") }
                    return .double(value)
                }
                guard let value = Int(text) else { throw ParseError(description: "bad number \(text) at \(start)") }
                return .int(value)
            }
        }

        mutating func string() throws -> String {
            try expect("\"")
            var out: [UInt8] = []
            while true {
                guard index < bytes.count else { throw ParseError(description: "unterminated string") }
                let byte = bytes[index]
                index += 1
                if byte == 0x22 { break }
                guard byte >= 0x20 else { throw ParseError(description: "control character in a string") }
                guard byte == 0x5C else { out.append(byte); continue }
                let escape = bytes[index]
                index += 1
                switch escape {
                case 0x22, 0x5C, 0x2F: out.append(escape)
                case 0x62: out.append(0x08)
                case 0x66: out.append(0x0C)
                case 0x6E: out.append(0x0A)
                case 0x72: out.append(0x0D)
                case 0x74: out.append(0x09)
                case 0x75:
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        try expect("\\u")
                        let low = try hex4()
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw ParseError(description: "bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(unicode)).utf8))
                default:
                    throw ParseError(description: "bad escape")
                }
            }
            return String(decoding: out, as: UTF8.self)
        }

        mutating func hex4() throws -> UInt32 {
            guard bytes.count - index >= 4, let value = UInt32(String(decoding: bytes[index..<(index + 4)], as: UTF8.self), radix: 16) else {
                throw ParseError(description: "bad \\u escape")
            }
            index += 4
            return value
        }
    }
}
