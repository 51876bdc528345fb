import Foundation
import SMTPCapture
import SMTPCore
import SMTPTranscript
import Testing

/// The project's own captures, made by real clients against real servers (`Captures/make-captures.sh`),
/// checked against what each client logged of the same dialogue.
@Suite struct CapturesTests {
    static let names = Fixtures.captureNames

    @Test func capturesArePresent() {
        #expect(Self.names.count >= 10, "Captures/ should hold the sample captures")
    }

    /// The capture's dialogue as the client log shows it: command, auth and message lines from the
    /// client, every reply line from the server, in order.
    static func dialogue(_ observer: RecordingObserver, session: Int, includeData: Bool) -> [ClientLog.Line] {
        var lines: [ClientLog.Line] = []
        for event in observer.events {
            switch event {
            case .command(session, let raw, _, _), .auth(session, let raw):
                lines.append(.client(RecordingObserver.line(raw)))
            case .reply(session, let raw, _, _, _):
                lines += raw.split(separator: 0x0A).map { .server(RecordingObserver.line(Array($0))) }
            case .data(session, let raw, _, _) where includeData:
                lines += ClientLog.splitLines(raw).map { .client($0) }
            case .messageEnd(session, let raw, _, _, _) where includeData && !raw.isEmpty:
                lines.append(.client(RecordingObserver.line(raw)))
            default:
                break
            }
        }
        return lines
    }

    @Test(arguments: names)
    func dialogueMatchesTheClientLog(_ name: String) throws {
        let decrypted = Fixtures.keys(for: [Fixtures.capture(name)]) != nil
        let log = try ClientLog(contentsOf: Fixtures.captures.appendingPathComponent(name + ".client.log"), decrypted: decrypted)
        let (observer, reports) = Fixtures.extract([Fixtures.capture(name)], options: ExtractionOptions(extraPorts: []))
        #expect(reports[0].error == nil)
        #expect(observer.sessions.count == 1, "one SMTP session in \(name)")
        var extracted = Self.dialogue(observer, session: 1, includeData: log.logsMessageData)
        if log.serverOnly { extracted = extracted.filter { if case .server = $0 { true } else { false } } }
        if name.hasPrefix("openssl") {
            // `s_client -starttls smtp` speaks the dialogue before TLS itself and prints only its
            // last line; from TLS on it prints every server line.
            let afterTLS = extracted.drop { $0 != .server("220 Ready to start TLS") }.dropFirst()
            #expect(log.lines.first == extracted.last { $0 != .server("220 Ready to start TLS") && extracted.firstIndex(of: $0)! < extracted.firstIndex(of: .server("220 Ready to start TLS"))! })
            #expect(Array(afterTLS) == Array(log.lines.dropFirst()))
        } else if name.hasPrefix("curl") {
            // curl -v stops logging before it sends QUIT: the capture has exactly that more.
            #expect(Array(extracted.dropLast(2)) == log.lines)
            #expect(extracted.suffix(2).first == .client("QUIT"))
        } else {
            #expect(extracted == log.lines)
        }
        if log.encryptedLines > 0 || decrypted {
            #expect(observer.events.contains { if case .tls = $0 { true } else { false } }, "TLS start is marked in \(name)")
        }
        #expect(!log.lines.isEmpty || log.encryptedLines > 0)
    }

    /// Each message on the wire, dot-unstuffed, is the .eml the client sent.
    @Test(arguments: names)
    func messagesMatchWhatTheClientSent(_ name: String) throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Fixtures.captures.appendingPathComponent("messages").path)
            .filter { $0 == name + ".eml" || ($0.hasPrefix(name + ".") && $0.hasSuffix(".eml")) }.sorted()
        let (observer, _) = Fixtures.extract([Fixtures.capture(name)])
        let encrypted = observer.events.contains { if case .tls = $0 { true } else { false } } && Fixtures.keys(for: [Fixtures.capture(name)]) == nil
        let extracted = observer.messages(session: 1)
        if encrypted {
            #expect(extracted.isEmpty, "nothing is read after TLS starts")
            return
        }
        #expect(extracted.count == files.count)
        for (index, file) in files.enumerated() where index < extracted.count {
            let text = try Data(contentsOf: Fixtures.captures.appendingPathComponent("messages/" + file))
            // The .eml files are stored with LF; clients send CRLF.
            var expected: [UInt8] = []
            for byte in text {
                if byte == 0x0A { expected.append(0x0D) }
                expected.append(byte)
            }
            #expect(extracted[index] == expected, "message \(index + 1) of \(name)")
        }
    }

    /// The text transcript of each capture, with full message data, against its reviewed golden file.
    /// SMTPTAPE_UPDATE_GOLDEN=1 writes the new transcript *beside* the golden file (`.new`) and
    /// fails: a person compares them and replaces the golden file by hand. An update never passes.
    @Test(arguments: names)
    func transcriptMatchesGolden(_ name: String) throws {
        let text = try Fixtures.render([Fixtures.capture(name)]) { TextTranscriptRenderer(output: $0, data: .full) }
        // The file name in session headers depends on where the repository is checked out.
        let stable = text.replacingOccurrences(of: Fixtures.captures.path + "/", with: "Captures/")
        let golden = Fixtures.golden.appendingPathComponent(name + ".txt")
        let reviewed = try String(contentsOf: golden, encoding: .utf8)
        if stable != reviewed, ProcessInfo.processInfo.environment["SMTPTAPE_UPDATE_GOLDEN"] == "1" {
            try stable.write(to: golden.appendingPathExtension("new"), atomically: true, encoding: .utf8)
        }
        #expect(stable == reviewed, "review \(golden.lastPathComponent).new (SMTPTAPE_UPDATE_GOLDEN=1 writes it) and replace the golden file by hand")
    }

    /// Golden files are kept only for what the tests name: a stray or forgotten file fails.
    @Test func goldenFoldersHoldOnlyWhatTheTestsName() throws {
        let present = try FileManager.default.contentsOfDirectory(atPath: Fixtures.golden.path).sorted()
        #expect(present == Self.names.map { $0 + ".txt" }.sorted())
        let broken = Fixtures.root.appendingPathComponent("Tests/SMTPScenarioTests/Broken")
        let fixtures = try FileManager.default.contentsOfDirectory(atPath: broken.path)
        let stems = Set(fixtures.map { String($0.split(separator: ".").first ?? "") })
        #expect(fixtures.sorted() == stems.flatMap { [$0 + ".expected", $0 + ".yaml"] }.sorted(), "each broken scenario has its expectations")
    }

    @Test func secretsAreRedactedUnlessAskedFor() throws {
        for name in ["smtplib-aiosmtpd-auth-plain", "smtplib-aiosmtpd-auth-login"] {
            let hidden = try Fixtures.render([Fixtures.capture(name)]) { TextTranscriptRenderer(output: $0, data: .none) }
            let shown = try Fixtures.render([Fixtures.capture(name)]) { TextTranscriptRenderer(output: $0, data: .none, showSecrets: true) }
            let json = try Fixtures.render([Fixtures.capture(name)]) { JSONTranscriptWriter(output: $0) }
            // alice / wonderland in base64, as PLAIN (\0alice\0wonderland) and LOGIN sends them.
            for secret in ["AGFsaWNlAHdvbmRlcmxhbmQ=", "YWxpY2U=", "d29uZGVybGFuZA=="] {
                #expect(!hidden.contains(secret))
                #expect(!json.contains(secret))
                #expect(!json.contains(Data(secret.utf8).base64EncodedString()))
            }
            #expect(hidden.contains(Secrets.placeholder))
            #expect(json.contains("\"redacted\":true"))
            #expect(shown.contains("AGFsaWNlAHdvbmRlcmxhbmQ=") || shown.contains("d29uZGVybGFuZA=="))
        }
    }

    @Test func sessionsAreNumberedAcrossFiles() {
        let names = ["swaks-sink-plain", "smtplib-sink-multi", "curl-sink-plain"]
        let (observer, _) = Fixtures.extract(names.map(Fixtures.capture))
        #expect(observer.sessions.map(\.id) == [1, 2, 3])
        #expect(observer.sessions.map { URL(fileURLWithPath: $0.source).lastPathComponent } == names.map { $0 + ".pcap" })
    }

    @Test func rejectedRecipientIsInTheSummary() throws {
        let (observer, _) = Fixtures.extract([Fixtures.capture("swaks-aiosmtpd-rejected-rcpt")])
        let summary = try #require(observer.ended.first?.summary)
        #expect(summary.recipients.map(\.replyCode) == [250, 550])
        #expect(summary.completedMessages == 1)
        #expect(summary.lastReplyCode == 221)
        #expect(observer.ended.first?.reason == .closed(by: .client))
    }

    @Test func pipelinedRepliesPairWithTheirCommands() {
        let (observer, _) = Fixtures.extract([Fixtures.capture("swaks-sink-pipelining")])
        let contexts = observer.replies(session: 1).map { "\($0.code ?? 0) \($0.context)" }
        #expect(contexts == ["220 greeting", "250 EHLO", "250 MAIL", "250 RCPT", "250 RCPT", "354 DATA", "250 message", "221 QUIT"])
    }

    @Test func implicitTLSIsMarkedAndNotParsed() throws {
        let (observer, _) = Fixtures.extract([Fixtures.capture("swaks-aiosmtpd-smtps")])
        #expect(observer.events.first == .tls(session: 1, mode: .implicit))
        let summary = try #require(observer.ended.first?.summary)
        #expect(summary.tls == .implicit)
        #expect(summary.encryptedClient > 0 && summary.encryptedServer > 0)
        #expect(observer.commands(session: 1).isEmpty)
    }

    @Test func ipv6SessionEndpoints() {
        let (observer, _) = Fixtures.extract([Fixtures.capture("msmtp-aiosmtpd-ipv6")])
        #expect(observer.sessions.first?.server == "[::1]:25")
        #expect(observer.sessions.first?.client.hasPrefix("[::1]:") == true)
    }
}
