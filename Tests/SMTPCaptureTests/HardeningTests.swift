import Foundation
import SMTPCore
import Testing

/// Regression tests for the Hardening issue, one or more per numbered defect, through the built
/// binary on synthetic captures (each failed before the fix).
@Suite struct HardeningTests {
    let cli = CLITests()

    /// A temporary folder, removed when the test ends (`defer`).
    func folder(_ name: String) -> URL { Fixtures.temporaryFile(name) }

    func write(_ c: Conversation, _ name: String, in folder: URL) throws -> String {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let url = folder.appendingPathComponent(name)
        try c.pcap.write(to: url)
        return url.path
    }

    /// EHLO, MAIL, RCPT, DATA answered 354, on a fresh connection.
    func sessionUpToData() -> Conversation {
        var c = Conversation()
        c.handshake()
        c.server("220 mx.example.com ESMTP\r\n")
        c.client("EHLO client.example.com\r\n")
        c.server("250 mx.example.com\r\n")
        c.client("MAIL FROM:<alice@example.com>\r\n")
        c.server("250 2.1.0 Ok\r\n")
        c.client("RCPT TO:<bob@example.net>\r\n")
        c.server("250 2.1.5 Ok\r\n")
        c.client("DATA\r\n")
        c.server("354 End data with <CR><LF>.<CR><LF>\r\n")
        return c
    }

    // MARK: 1. Gaps inside message data

    @Test func aLostDotLineDoesNotJoinQuitOntoTheMessage() throws {
        let dir = folder("item1")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = sessionUpToData()
        c.client("Subject: x\r\nDate: Tue, 04 Mar 2025 07:54:5")
        c.lostClient("0 +0000\r\n\r\nbody\r\n.\r\n")
        c.server("250 2.0.0 Ok: queued as 1234\r\n")
        c.client("QUIT\r\n")
        c.server("221 2.0.0 Bye\r\n")
        c.close()
        let capture = try write(c, "lost-dot.pcap", in: dir)
        let messages = try cli.smtptape(["messages", capture, "-o", dir.appendingPathComponent("eml").path])
        #expect(messages.status == 0)
        let eml = try String(contentsOf: dir.appendingPathComponent("eml/session-0001-message-01.incomplete.eml"), encoding: .utf8)
        #expect(eml == "Subject: x\r\nDate: Tue, 04 Mar 2025 07:54:5", "the message up to the hole, nothing after it")
        let transcript = try cli.smtptape(["transcript", capture]).text
        #expect(!transcript.contains("unsolicited"))
        #expect(transcript.contains("C: QUIT"))
        #expect(transcript.contains("message 1 body: 0 lines, 0 bytes (--data full shows it); incomplete"))
        #expect(transcript.contains("0 messages -> 250; 20 bytes missing; last reply 221"))
    }

    // MARK: 2. Scenarios from gapped captures

    @Test func aScenarioStopsBeforeTheFirstGapAndCheckAcceptsIt() throws {
        let dir = folder("item2")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("EHLO c\r\n")
        c.server("250-mx\r\n250 PIPELINING\r\n")
        c.client("MAIL FROM:<al")
        c.lostClient("ice@example.com>\r\n")
        c.client("RCPT TO:<b@c>\r\n")
        c.server("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 Bye\r\n")
        c.close()
        let capture = try write(c, "cut-line.pcap", in: dir)
        let out = dir.appendingPathComponent("scenarios")
        let extract = try cli.smtptape(["extract", capture, "-o", out.path])
        #expect(extract.status == 0)
        let file = out.appendingPathComponent("cut-line-session-1.yaml").path
        let yaml = try String(contentsOfFile: file, encoding: .utf8)
        #expect(!yaml.contains("client-base64"), "no line without its ending")
        #expect(yaml.contains("incomplete: at +0."))
        #expect(yaml.contains("the client's line was cut off before its end; the scenario keeps the 1 step answered before it"))
        #expect(try cli.smtptape(["check", file]).status == 0)
        let rendered = try cli.smtptape(["transcript", file]).text
        #expect(!rendered.contains("<alRCPT"))
        #expect(rendered.contains("C: EHLO c"))
        #expect(!rendered.contains("MAIL"))
    }

    @Test func aGapInsideAuthDoesNotShiftReplies() throws {
        let dir = folder("item2b")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("AUTH LOGIN\r\n")
        c.server("334 VXNlcm5hbWU6\r\n")
        c.lostClient("YWxpY2U=\r\n")
        c.server("334 UGFzc3dvcmQ6\r\n")
        c.client("c2VjcmV0\r\n")
        c.server("235 2.7.0 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 Bye\r\n")
        c.close()
        let capture = try write(c, "auth-gap.pcap", in: dir)
        let out = dir.appendingPathComponent("scenarios")
        #expect(try cli.smtptape(["extract", capture, "-o", out.path]).status == 0)
        let file = out.appendingPathComponent("auth-gap-session-1.yaml").path
        let yaml = try String(contentsOfFile: file, encoding: .utf8)
        #expect(!yaml.contains("fault"))
        #expect(!yaml.contains("221"), "the reply to QUIT is not paired with an auth step")
        #expect(try cli.smtptape(["check", file]).status == 0)
    }

    // MARK: 3. Secrets

    @Test func aCaptureStartingInsideAuthLoginHidesThePassword() throws {
        let dir = folder("item3")
        defer { try? FileManager.default.removeItem(at: dir) }
        // No handshake: the capture begins with the password line, which is not base64 alone.
        var c = Conversation()
        c.client("hunter2 is my pass\r\n")
        c.server("235 2.7.0 Authentication successful\r\n")
        c.client("QUIT\r\n")
        c.server("221 Bye\r\n")
        var b = Conversation(client: .v4(192, 0, 2, 2, port: 40001))
        b.pcap = c.pcap
        b.client("c2VjcmV0cGFzcw==\r\n")  // base64 alone, with no reply seen
        c.pcap = b.pcap
        let capture = try write(c, "mid-auth.pcap", in: dir)
        for arguments in [["transcript"], ["transcript", "--format", "json"]] {
            let result = try cli.smtptape(arguments + [capture])
            #expect(!result.text.contains("hunter2"))
            #expect(!result.text.contains("c2VjcmV0cGFzcw"))
            #expect(!result.text.contains("aHVudGVyM"), "nor its base64 in raw")
        }
        let json = try cli.smtptape(["transcript", "--format", "json", capture]).text
        #expect(json.contains("\"answers\":\"auth\""))
        let out = dir.appendingPathComponent("scenarios")
        _ = try cli.smtptape(["extract", capture, "-o", out.path])
        for name in try FileManager.default.contentsOfDirectory(atPath: out.path) {
            let yaml = try String(contentsOf: out.appendingPathComponent(name), encoding: .utf8)
            #expect(!yaml.contains("hunter2") && !yaml.contains("c2VjcmV0cGFzcw"))
        }
        // With --show-secrets the line is there.
        #expect(try cli.smtptape(["transcript", "--show-secrets", capture]).text.contains("hunter2"))
    }

    @Test func aMalformedAuthLineHidesEverythingAfterTheVerb() throws {
        let dir = folder("item3b")
        defer { try? FileManager.default.removeItem(at: dir) }
        // As in PCredz's smtp.pcap: no separator, literal backslashes, no line ending.
        var c = Conversation(server: .v4(192, 0, 2, 25, port: 587))
        c.client("AUTH PLAIN\\r\\nAGFsaWNlAHNlY3JldA==\\r\\n")
        let capture = try write(c, "bad-auth.pcap", in: dir)
        let result = try cli.smtptape(["transcript", capture])
        #expect(!result.text.contains("AGFsaWNl"))
        #expect(!result.text.uppercased().contains("AGFSAWNL"))
        #expect(result.text.contains("C: AUTH [REDACTED]"))
        #expect(result.text.contains("AUTH [REDACTED]; last reply none"))
    }

    // MARK: 5. No silent overwrites

    @Test func extractAndMessagesRefuseToOverwrite() throws {
        let dir = folder("item5")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = Fixtures.capture("swaks-sink-plain")
        for command in ["extract", "messages"] {
            let out = dir.appendingPathComponent(command)
            #expect(try cli.smtptape([command, capture, "-o", out.path]).status == 0)
            let name = command == "extract" ? "swaks-sink-plain-session-1.yaml" : "session-0001-message-01.eml"
            let file = out.appendingPathComponent(name)
            try Data("edited by a person\n".utf8).write(to: file)
            let again = try cli.smtptape([command, capture, "-o", out.path])
            #expect(again.status == 2)
            #expect(again.stderr == "smtptape: \(file.path) already exists; nothing was written (--force replaces existing files)\n")
            #expect(try String(contentsOf: file, encoding: .utf8) == "edited by a person\n")
            #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == [name], "the folder is as it was")
            #expect(try cli.smtptape([command, "--force", capture, "-o", out.path]).status == 0)
            #expect(try String(contentsOf: file, encoding: .utf8) != "edited by a person\n")
        }
    }

    @Test func aLinkPlantedInTheOutputFolderIsNotFollowed() throws {
        let dir = folder("item5b")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let victim = dir.appendingPathComponent("victim.txt")
        try Data("keep me\n".utf8).write(to: victim)
        try FileManager.default.createSymbolicLink(at: out.appendingPathComponent("session-0001-message-01.eml"), withDestinationURL: victim)
        let result = try cli.smtptape(["messages", "--force", Fixtures.capture("swaks-sink-plain"), "-o", out.path])
        #expect(result.status == 0)
        #expect(try String(contentsOf: victim, encoding: .utf8) == "keep me\n", "the link's target is untouched")
        let attributes = try FileManager.default.attributesOfItem(atPath: out.appendingPathComponent("session-0001-message-01.eml").path)
        #expect(attributes[.type] as? FileAttributeType == .typeRegular, "the link was replaced by the file")
    }

    /// Without --force, anything already in the output folder under a name to be written (a
    /// symbolic link too, dangling or not) is a conflict: nothing is written, and it stays.
    @Test func aLinkInTheWayIsAConflictWithoutForce() throws {
        let dir = folder("item5c")
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let link = out.appendingPathComponent("session-0001-message-01.eml")
        try FileManager.default.createSymbolicLink(at: link, withDestinationURL: dir.appendingPathComponent("nowhere"))
        let result = try cli.smtptape(["messages", Fixtures.capture("swaks-sink-plain"), "-o", out.path])
        #expect(result.status == 2)
        #expect(result.stderr.hasPrefix("smtptape: \(link.path) already exists"))
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link.path) == dir.appendingPathComponent("nowhere").path)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["session-0001-message-01.eml"])
    }

    // MARK: 6. Pipes

    @Test func standardInputIsReadOnce() throws {
        let dir = folder("item6")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = URL(fileURLWithPath: Fixtures.capture("swaks-sink-plain"))
        let direct = try cli.smtptape(["transcript", capture.path]).text
        for name in ["/dev/stdin", "-"] {
            let piped = try cli.smtptape(["transcript", name], stdin: capture)
            #expect(piped.status == 0, "\(piped.stderr)")
            #expect(piped.text.replacingOccurrences(of: "(\(name == "-" ? "stdin" : name))", with: "(\(capture.path))") == direct)
        }
        let out = dir.appendingPathComponent("scenarios")
        let extract = try cli.smtptape(["extract", "-", "-o", out.path], stdin: capture)
        #expect(extract.status == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path) == ["stdin-session-1.yaml"])
        let yaml = try String(contentsOf: out.appendingPathComponent("stdin-session-1.yaml"), encoding: .utf8)
        let committed = try String(contentsOf: Fixtures.root.appendingPathComponent("Scenarios/recorded/swaks-sink-plain-session-1.yaml"), encoding: .utf8)
        let digest = committed.split(separator: "\n").first { $0.hasPrefix("  sha256: ") }!
        #expect(yaml.contains(digest + "\n"), "the digest of what came through the pipe")
        #expect(yaml.contains("  capture: stdin\n"))
    }

    // MARK: 7. Who closed

    @Test func whoClosedIsSaidAndScenariosAgree() throws {
        let dir = folder("item7")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = sessionUpToData()
        c.client("Subject: x\r\n\r\nbody\r\n.\r\n")
        c.closeByServer()  // the server never answered the message
        let capture = try write(c, "server-closed.pcap", in: dir)
        #expect(try cli.smtptape(["transcript", capture]).text.contains("-- connection closed by the server"))
        #expect(try cli.smtptape(["transcript", "--format", "json", capture]).text.contains("\"reason\":\"closed_by_server\""))
        let out = dir.appendingPathComponent("scenarios")
        #expect(try cli.smtptape(["extract", capture, "-o", out.path]).status == 0)
        let file = out.appendingPathComponent("server-closed-session-1.yaml").path
        let yaml = try String(contentsOfFile: file, encoding: .utf8)
        #expect(yaml.contains("    fault: drop\n"))
        #expect(!yaml.contains("client-close"))
        #expect(try cli.smtptape(["check", file]).status == 0)
        #expect(try cli.smtptape(["transcript", Fixtures.capture("swaks-sink-plain")]).text.contains("-- connection closed by the server"))
    }

    // MARK: 8. Summaries and smaller defects

    @Test func summariesCarryTheReplyCodes() throws {
        let dir = folder("item8")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("EHLO c\r\n")
        c.server("250 mx\r\n")
        // AUTH with its initial response, pipelined with MAIL and RCPT (RFC 4954 allows it).
        c.client("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n")
        c.server("235 2.7.0 ok\r\n550 5.7.1 no\r\n250 ok\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let capture = try write(c, "summary.pcap", in: dir)
        let text = try cli.smtptape(["transcript", capture]).text
        #expect(text.contains("== summary: from <a@b> (550) to <c@d> (250); 0 messages; AUTH PLAIN -> 235; last reply 221"))
        let end = try #require(try cli.smtptape(["transcript", "--format", "json", capture]).text.split(separator: "\n").last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(end.utf8)) as? [String: Any])
        #expect((object["mail_from"] as? [[String: Any]])?.first?["code"] as? Int == 550)
        #expect((object["mail_from"] as? [[String: Any]])?.first?["address"] as? String == "a@b")
        #expect((object["auth"] as? [String: Any])?["mechanism"] as? String == "PLAIN")
        #expect((object["auth"] as? [String: Any])?["code"] as? Int == 235)
    }

    @Test func addressesAreShownAsSent() throws {
        let dir = folder("item8b")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("MAIL FROM:<al")
        c.lostClient("ice@example.com>\r\n")
        c.client("QUIT\r\n")
        c.server("250 ok\r\n221 bye\r\n")
        c.close()
        let text = try cli.smtptape(["transcript", try write(c, "cut.pcap", in: dir)]).text
        #expect(text.contains("from <al (250)"))
        #expect(!text.contains("<<al>"))
    }

    @Test func aConnectionSilentForYearsIsTwoSessions() throws {
        let dir = folder("item8c")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("NOOP\r\n")
        c.server("250 ok\r\n")
        // The same addresses and ports, 14 years later, without a handshake.
        c.pcap.segment(from: c.client, to: c.server, seq: c.clientSeq, ack: c.serverSeq, payload: Array("QUIT\r\n".utf8), advance: 14 * 365 * 86_400_000_000)
        c.clientSeq &+= 6
        c.server("221 bye\r\n")
        c.close()
        let text = try cli.smtptape(["transcript", try write(c, "jump.pcap", in: dir)]).text
        #expect(text.contains("== session 1:") && text.contains("== session 2:"))
        #expect(text.contains("-- connection idle, flushed"))
        #expect(!text.contains("44150"), "no session lasts 14 years")
    }

    @Test func sessionWarningsNameTheMissingNumbers() throws {
        let dir = folder("item8d")
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try cli.smtptape(["extract", "--session", "9", "--session", "1", "--session", "7", Fixtures.capture("swaks-sink-plain"), "-o", dir.path])
        #expect(result.status == 1)
        #expect(result.stderr == "smtptape: warning: --session 7, 9: no such session (the input held sessions 1 to 1)\n")
    }

    @Test func scenarioTranscriptsNameTheScenarioAndSayTLSIsShownInTheClear() throws {
        let text = try cli.smtptape(["transcript", Fixtures.root.appendingPathComponent("Scenarios/starttls-required.yaml").path]).text
        #expect(text.contains("== session 1: scenario 'client stays in the clear', "))
        #expect(!text.contains("1970-01-01"))
        #expect(!text.contains("client -> scenario"))
        #expect(text.contains("-- TLS started (STARTTLS): the dialogue inside TLS follows, in the clear"))
        #expect(!text.contains("the rest of the session is encrypted"))
        let recorded = try cli.smtptape(["transcript", Fixtures.root.appendingPathComponent("Scenarios/recorded/swaks-sink-plain-session-1.yaml").path]).text
        #expect(recorded.contains("== session 1: 127.0.0.1:"))
        #expect(recorded.contains(", 2026-11-29T"))
    }

    // MARK: 9. STARTTLS not followed by TLS

    @Test func startTLSFollowedByPlaintextIsReadOn() throws {
        let dir = folder("item9")
        defer { try? FileManager.default.removeItem(at: dir) }
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        c.client("STARTTLS\r\n")
        c.server("220 2.0.0 Ready to start TLS\r\n")
        c.client("EHLO c\r\n")  // a decrypting tap: what follows is in the clear
        c.server("250 mx\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let capture = try write(c, "tap.pcap", in: dir)
        let text = try cli.smtptape(["transcript", capture]).text
        #expect(text.contains("-- STARTTLS accepted, but no TLS followed: the session goes on in plaintext"))
        #expect(text.contains("C: EHLO c") && text.contains("S: 221 bye"))
        let json = try cli.smtptape(["transcript", "--format", "json", capture]).text
        #expect(json.contains("\"type\":\"tls_start\",\"mode\":\"starttls\",\"state\":\"plaintext\""))
        #expect(json.contains("\"tls\":\"starttls\",\"tls_state\":\"plaintext\""))
    }

    // MARK: 10. JSON and help truthfulness

    @Test func jsonAlwaysHasRedactedAndFlags() throws {
        let lines = try cli.smtptape(["transcript", "--format", "json", Fixtures.capture("smtplib-aiosmtpd-auth-login")]).text.split(separator: "\n")
        for line in lines {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            switch object["type"] as? String {
            case "command", "auth":
                #expect(object["redacted"] is Bool)
                #expect(object["flags"] is [Any])
            case "reply":
                #expect(object["flags"] is [Any])
            default:
                break
            }
        }
    }

    @Test func helpSaysWhatTheCommandsTake() throws {
        #expect(!(try cli.smtptape(["messages", "--help"]).text.contains("--show-secrets")))
        let transcript = try cli.smtptape(["transcript", "--help"]).text
        #expect(transcript.contains("<input>"))
        #expect(!transcript.contains("<capture>"))
    }

    // MARK: 11. Overlapping segments and pairing

    @Test func overlappingOutOfOrderSegmentsKeepTheBytesThatCameFirst() throws {
        var c = Conversation()
        c.handshake()
        c.server("220 mx ESMTP\r\n")
        let start = c.clientSeq
        // Out of order, before the NOOP that fills the hole: first a segment for bytes 8..<14, then
        // one for 6..<20 that carries other bytes for 8..<14. The bytes that came first win, though
        // the later segment starts lower.
        c.pcap.segment(from: c.client, to: c.server, seq: start &+ 8, ack: c.serverSeq, payload: Array("LO c\r\n".utf8))
        c.pcap.segment(from: c.client, to: c.server, seq: start &+ 6, ack: c.serverSeq, payload: Array("HEXXXXXXQUIT\r\n".utf8))
        c.pcap.segment(from: c.client, to: c.server, seq: start, ack: c.serverSeq, payload: Array("NOOP\r\n".utf8))
        c.clientSeq = start &+ 20
        let dir = folder("item11")
        defer { try? FileManager.default.removeItem(at: dir) }
        let text = try cli.smtptape(["transcript", try write(c, "overlap.pcap", in: dir)]).text
        #expect(text.contains("C: NOOP\n") && text.contains("C: HELO c\n") && text.contains("C: QUIT\n"))
        #expect(!text.contains("XXXX"))
    }

    @Test func aGreetingWithoutLineEndingDoesNotShiftThePairing() throws {
        // As in suricata-verify's detect-email-received: the greeting has no CRLF and the EHLO
        // reply never gets its last line.
        var c = Conversation()
        c.handshake()
        c.server("220 smtp.example.com ESMTP AAAA")
        c.client("EHLO Simone\r\n")
        c.server("250-smtp001.example.com\r\n")
        c.client("MAIL FROM: <a@b>\r\n")
        c.server("250 ok\r\n")
        c.client("RCPT TO: <c@d>\r\n")
        c.server("250 ok\r\n")
        c.client("DATA\r\n")
        c.server("354 Start mail input\r\n")
        c.client("Subject: x\r\n\r\nhello\r\n.\r\n")
        c.server("250 ok: queued as 12345\r\n")
        c.client("QUIT\r\n")
        c.server("221 bye\r\n")
        c.close()
        let dir = folder("item11b")
        defer { try? FileManager.default.removeItem(at: dir) }
        let capture = try write(c, "greeting.pcap", in: dir)
        let json = try cli.smtptape(["transcript", "--format", "json", capture]).text
        #expect(json.contains("\"code\":354,\"lines\":[\"Start mail input\"],\"answers\":\"DATA\""))
        #expect(json.contains("\"answers\":\"message\""))
        let text = try cli.smtptape(["transcript", capture]).text
        #expect(text.contains("from <a@b> (250) to <c@d> (250); 1 message"))
    }
}
