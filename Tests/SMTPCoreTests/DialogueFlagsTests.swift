import Testing
@testable import SMTPCore

/// Rule-breaking input: accepted, kept byte for byte, and flagged.
@Suite("SMTPDialogue flags")
struct DialogueFlagsTests {
    @Test("bare LF on commands and replies")
    func bareLF() {
        let t = play([.server("220 hi\n"), .client("EHLO c\n"), .server("250-a\n250 b\r\n"), .client("QUIT\r\n")])
        #expect(t.log == ["S 220 greeting [bare_lf]", "C EHLO [bare_lf]", "S 250 EHLO (2 lines) [bare_lf]", "C QUIT"])
        expectStreamsReproduced(t)
    }

    @Test("a bare LF split from its line across segments is still flagged")
    func bareLFAcrossSegments() {
        let t = play([.server("220 hi\r\n"), .client("NOOP"), .client("\n"), .client("NOOP\r"), .client("\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP [bare_lf]", "C NOOP"])
    }

    @Test("command lines over 512 bytes with CRLF are flagged", arguments: [(510, false), (511, true), (2000, true)])
    func overLengthCommand(_ contentLength: Int, _ flagged: Bool) {
        let line = "NOOP " + String(repeating: "x", count: contentLength - 5)
        let t = play([.server("220 hi\r\n"), .client(ByteString(line + "\r\n"))])
        #expect(t.log == ["S 220 greeting", "C NOOP" + (flagged ? " [over_length]" : "")])
        expectStreamsReproduced(t)
    }

    @Test("reply lines over 512 bytes with CRLF are flagged", arguments: [(510, false), (511, true)])
    func overLengthReply(_ contentLength: Int, _ flagged: Bool) {
        let line = "220 " + String(repeating: "x", count: contentLength - 4)
        let t = play([.server(ByteString(line + "\r\n"))])
        #expect(t.log == ["S 220 greeting" + (flagged ? " [over_length]" : "")])
    }

    @Test("a reply code without separator: 250OK")
    func missingSeparator() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .server("250OK\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "S 250 NOOP [no_space_after_code]"])
        #expect(t.summary.lastReplyCode == 250)
    }

    @Test("a server line without a reply code", arguments: ["hello\r\n", "2500 x\r\n", "25\r\n", "\r\n"])
    func notAReply(_ line: String) {
        let t = play([.server(ByteString(line))], expectGreeting: false)
        #expect(t.log == ["S - none [not_a_reply]"])
        #expect(t.summary.lastReplyCode == nil)
        expectStreamsReproduced(t)
    }

    @Test("a line without a reply code does not take the reply slot of the command it precedes")
    func notAReplyKeepsPairing() {
        let t = play([
            .server("220 hi\r\n"),
            .client("EHLO c\r\n"),
            .server("some proxy chatter\r\n250 ok\r\n"),
            .client("QUIT\r\n"),
            .server("221 bye\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C EHLO", "S - none [not_a_reply]", "S 250 EHLO", "C QUIT", "S 221 QUIT"])
    }

    @Test("a non-reply line inside a multi-line reply ends it and stands alone")
    func notAReplyInsideMultiLine() {
        let t = play([.server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250-a\r\njunk\r\n"), .client("QUIT\r\n")])
        #expect(t.observer.replies.count == 3)
        #expect(t.observer.replies[1].raw == Array("250-a\r\n"))
        #expect(t.observer.replies[1].code == 250)
        #expect(t.observer.replies[2].flags.contains(.notAReply))
        expectStreamsReproduced(t)
    }

    @Test("replies with no command waiting are unsolicited")
    func unsolicited() {
        let t = play([.server("421 4.4.2 timeout\r\n")], expectGreeting: false)
        #expect(t.log == ["S 421 none [unsolicited]"])
        let u = play([.server("220 hi\r\n421 4.3.2 shutting down\r\n")])
        #expect(u.log == ["S 220 greeting", "S 421 none [unsolicited]"])
        #expect(u.summary.lastReplyCode == 421)
        expectStreamsReproduced(u)
    }

    @Test("a multi-line reply whose lines carry different codes")
    func mixedCodes() {
        let t = play([.server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250-a\r\n251 b\r\n")])
        #expect(t.log == ["S 220 greeting", "C EHLO", "S 251 EHLO (2 lines) [mixed_codes]"])
    }

    @Test("unterminated final lines are reported on finish")
    func unterminatedOnFinish() {
        let t = play([.server("220 hi\r\n"), .client("QUIT"), .server("221 bye")])
        #expect(t.log == ["S 220 greeting", "C QUIT [unterminated]", "S 221 QUIT [unterminated]"])
        #expect(t.summary.quitSent)
        expectStreamsReproduced(t)
    }

    @Test("a multi-line reply cut short is reported on finish")
    func unterminatedMultiLine() {
        let t = play([.server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250-a\r\n250-b\r\n")])
        #expect(t.log == ["S 220 greeting", "C EHLO", "S 250 EHLO (2 lines) [unterminated]"])
        expectStreamsReproduced(t)
    }

    @Test("nothing is reported twice when finish is called on an idle dialogue")
    func finishIdle() {
        var t = play([.server("220 hi\r\n"), .client("QUIT\r\n"), .server("221 bye\r\n")])
        let before = t.observer.events
        t.dialogue.finish(time: Timestamp(nanoseconds: 0), observer: t.observer)
        #expect(t.observer.events == before)
    }

    @Test("MAIL and RCPT without FROM: / TO: are malformed and not recorded")
    func malformedPaths() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL alice@example.com\r\n"), .server("501 syntax\r\n"),
            .client("RCPT bob@example.com\r\n"), .server("501 syntax\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C MAIL [malformed]", "S 501 MAIL", "C RCPT [malformed]", "S 501 RCPT"])
        #expect(t.summary.senders.isEmpty)
        #expect(t.summary.recipients.isEmpty)
    }

    @Test("non-UTF-8 bytes in commands are kept and reach the summary")
    func nonUTF8() {
        let mail = Array("MAIL FROM:<".utf8) + [0xFF, 0xFE] + Array("@x>\r\n".utf8)
        let t = play([.server("220 hi\r\n"), .clientBytes(mail), .server("250 ok\r\n")])
        #expect(t.summary.senders == [ByteString([0xFF, 0xFE] + Array("@x".utf8))])
        expectStreamsReproduced(t)
    }

    @Test("the dialogue and SMTPCommand agree on the verb of a line", arguments: [
        "HELO x\r\n", "mail FROM:<a@b>\r\n", "NOOP\r\n", "XCLIENT a\r\n", " HELO x\r\n", "MAIL\tFROM:<a@b>\r\n", "\r\n",
    ])
    func verbAgreesWithCommandParser(_ line: String) throws {
        let t = play([.server("220 hi\r\n"), .client(ByteString(line))])
        let command = try #require(t.observer.commands.first)
        #expect(command.verb == SMTPCommand(line: command.raw).verb)
    }

    @Test("a line that never ends is cut at the cap, then resynchronised at the next LF")
    func unterminatedLineCap() {
        let long = [UInt8](repeating: 0x61, count: SMTPLimits.unterminatedLineCap + 1)
        let t = play([.server("220 hi\r\n"), .clientBytes(long), .client("tail\r\nQUIT\r\n")])
        #expect(t.observer.fragments.map(\.raw.count) == [long.count, 6])
        #expect(t.observer.verbs == [.quit])
        expectStreamsReproduced(t)
    }
}

/// Bytes missing from the capture: reported, then parsing resumes at the next line.
@Suite("SMTPDialogue gaps")
struct DialogueGapTests {
    @Test("a gap inside a command: the partial line, the gap, the rest of the line as a fragment")
    func gapInCommand() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@b>\r\nRCPT TO:<b"),
            .gap(.client, 10),
            .client("xample.com>\r\nQUIT\r\n"),
            .server("250 ok\r\n250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C MAIL", "C RCPT [unterminated]", "G client 10", "F client xample.com>\\x0D\\x0A", "C QUIT",
            "S 250 MAIL", "S 250 RCPT", "S 221 QUIT",
        ])
        #expect(t.summary.gapBytes == 10)
        expectStreamsReproduced(t)
    }

    @Test("a gap at a line boundary: the next line is not trusted")
    func gapAtLineBoundary() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .gap(.client, 6), .client("QUIT\r\nRSET\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "G client 6", "F client QUIT\\x0D\\x0A", "C RSET"])
        expectStreamsReproduced(t)
    }

    @Test("a gap in DATA: message data continues mid-line, and the terminator still ends it")
    func gapInData() {
        let t = play([
            .server("220 hi\r\n"),
            .client("DATA\r\n"), .server("354 go\r\n"),
            .client("line one\r\nline t"),
            .gap(.client, 20),
            .client("wo ends\r\nmore\r\n.\r\nQUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "S 354 DATA",
            "D1 DATA line one\\x0D\\x0Aline t", "G client 20", "D1 DATA wo ends\\x0D\\x0Amore\\x0D\\x0A",
            "E1 DATA size=31 .\\x0D\\x0A", "C QUIT", "S 250 message", "S 221 QUIT",
        ])
        #expect(t.summary.gapBytes == 20)
        #expect(t.summary.completedMessages == 1)
        expectStreamsReproduced(t)
    }

    @Test("a gap right after a held dot in DATA passes the dot on as content")
    func gapAfterHeldDot() {
        let t = play([
            .server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n"),
            .client("a\r\n."), .gap(.client, 3), .client("x\r\n.\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "S 354 DATA", "D1 DATA a\\x0D\\x0A.", "G client 3", "D1 DATA x\\x0D\\x0A",
            "E1 DATA size=6 .\\x0D\\x0A",
        ])
        expectStreamsReproduced(t)
    }

    @Test("a gap after DATA before the 354: the rest is message data, and commands resume after it")
    func gapBeforeDataReply() {
        let t = play([
            .server("220 hi\r\n"),
            .client("DATA\r\n"),
            .gap(.client, 10),
            .client("rest\r\n.\r\nQUIT\r\n"),
            .server("354 go\r\n250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "G client 10", "D1 DATA rest\\x0D\\x0A", "E1 DATA size=6 .\\x0D\\x0A", "C QUIT",
            "S 354 DATA", "S 250 message", "S 221 QUIT",
        ])
        expectStreamsReproduced(t)
    }

    @Test("a gap inside a BDAT chunk counts against the chunk")
    func gapInBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 10 LAST\r\nabc"), .gap(.client, 4), .client("defQUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT abc", "G client 4", "D1 BDAT def", "E1 BDAT size=10", "C QUIT",
            "S 250 BDAT", "S 221 QUIT",
        ])
        expectStreamsReproduced(t)
    }

    @Test("a gap that ends exactly at the end of a BDAT chunk: the next command is read normally")
    func gapToEndOfBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 10 LAST\r\nabc"), .gap(.client, 7), .client("QUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT abc", "G client 7", "E1 BDAT size=10", "C QUIT",
            "S 250 BDAT", "S 221 QUIT",
        ])
        expectStreamsReproduced(t)
    }

    @Test("a gap past the end of a BDAT chunk ends the chunk and resynchronises")
    func gapPastBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 5 LAST\r\nab"), .gap(.client, 10), .client("T\r\nQUIT\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT ab", "G client 10", "E1 BDAT size=5", "F client T\\x0D\\x0A", "C QUIT",
        ])
        expectStreamsReproduced(t)
    }

    @Test("a server gap inside a multi-line reply flushes it as unterminated")
    func serverGap() {
        let t = play([
            .server("220 hi\r\n"),
            .client("EHLO c\r\nNOOP\r\n"),
            .server("250-a\r\n250-b"), .gap(.server, 5), .server("c\r\n250 ok\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C EHLO", "C NOOP", "S 250 EHLO (2 lines) [unterminated]", "G server 5", "F server c\\x0D\\x0A", "S 250 NOOP",
        ])
        #expect(t.summary.gapBytes == 5)
        expectStreamsReproduced(t)
    }

    @Test("a gap after TLS is counted, not parsed")
    func gapAfterTLS() {
        let t = play([.clientBytes([0x16, 0x03, 0x01, 0x00]), .gap(.client, 100), .client("QUIT\r\n")])
        #expect(t.observer.commands.isEmpty)
        #expect(t.summary.gapBytes == 100)
        #expect(t.summary.encryptedClient == 4 + 100 + 6)
    }

    @Test("zero-byte gaps and empty input change nothing")
    func emptyInput() {
        var t = play([.server("220 hi\r\n"), .client("NO")], finish: false)
        t.dialogue.receiveGap(0, from: .client, time: Timestamp(nanoseconds: 0), observer: t.observer)
        [UInt8]().withUnsafeBytes { t.dialogue.receive($0, from: .client, time: Timestamp(nanoseconds: 0), observer: t.observer) }
        Array("OP\r\n").withUnsafeBytes { t.dialogue.receive($0, from: .client, time: Timestamp(nanoseconds: 0), observer: t.observer) }
        #expect(t.log == ["S 220 greeting", "C NOOP"])
        #expect(t.summary.gapBytes == 0)
    }
}

/// Random streams, random segmentation and gaps: the raw-concatenation invariant always holds.
@Suite("SMTPDialogue invariants under random input")
struct DialogueFuzzTests {
    static let clientTokens: [[UInt8]] = [
        "EHLO c\r\n", "MAIL FROM:<a@b>\r\n", "RCPT TO:<c@d>\r\n", "DATA\r\n", "BDAT 3\r\n", "BDAT 2 LAST\r\n", "BDAT 0 LAST\r\n",
        "BDAT -1\r\n", "AUTH LOGIN\r\n", "AUTH PLAIN abc\r\n", "YWJj\r\n", "*\r\n", ".\r\n", "..\r\n", ".", "\r", "\n", "abc",
        "x\r\n", "QUIT\r\n", "RSET\r\n", "NOOP\r\n", "\r\n.\r\n", "\u{0}",
    ].map { Array($0.utf8) } + [[0xFF]]
    static let serverTokens: [[UInt8]] = [
        "220 hi\r\n", "250 ok\r\n", "250-a\r\n", "354 go\r\n", "334 x\r\n", "235 ok\r\n", "454 no\r\n", "550 no\r\n", "junk\r\n",
        "250OK\r\n", "25", "0 x\r\n", "\n",
    ].map { Array($0.utf8) }

    static func randomSteps(_ random: inout SplitMix64, gaps: Bool) -> [Step] {
        (0..<40).map { _ in
            let roll = Int.random(in: 0..<10, using: &random)
            if gaps, roll == 0 {
                return .gap(Bool.random(using: &random) ? .client : .server, Int.random(in: 1...20, using: &random))
            }
            let tokens = roll < 6 ? clientTokens : serverTokens
            let bytes = (0..<Int.random(in: 1...3, using: &random)).flatMap { _ in tokens.randomElement(using: &random)! }
            return roll < 6 ? .clientBytes(bytes) : .serverBytes(bytes)
        }
    }

    @Test("without gaps: streams reproduced, message sizes match the data seen", arguments: 1...10 as ClosedRange<UInt64>)
    func noGaps(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        var unnumbered: [String] = []
        for iteration in 0..<100 {
            let t = play(Self.randomSteps(&random, gaps: false))
            expectStreamsReproduced(t)
            for end in t.observer.messageEnds {
                #expect(end.size == t.observer.message(end.message).count, "seed \(seed) iteration \(iteration) message \(end.message)")
            }
            // Every message that began ends exactly once, and messages are numbered 1, 2, 3, ...
            let ended = t.observer.messageEnds.map(\.message)
            let begun = Set(t.observer.events.compactMap { if case .messageData(_, let n, _, _) = $0 { n } else { nil } })
            if ended != Array(0..<ended.count).map({ $0 + 1 }) || !begun.isSubset(of: Set(ended)) {
                unnumbered.append("iteration \(iteration): data for messages \(begun.sorted()), ends for \(ended)")
            }
        }
        #expect(unnumbered.isEmpty, "\(unnumbered.count) of 100 sessions; first: \(unnumbered.first ?? "")")
    }

    @Test("with gaps: streams reproduced and gap bytes summed", arguments: 1...10 as ClosedRange<UInt64>)
    func withGaps(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for _ in 0..<100 {
            let steps = Self.randomSteps(&random, gaps: true)
            let t = play(steps)
            expectStreamsReproduced(t)
            let gapTotal = steps.reduce(0) { if case .gap(_, let n) = $1 { $0 + n } else { $0 } }
            #expect(t.summary.gapBytes == gapTotal)
            #expect(t.observer.events.filter { if case .gap = $0 { true } else { false } }.count
                    == steps.filter { if case .gap = $0 { true } else { false } }.count)
        }
    }
}
