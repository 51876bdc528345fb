import Testing
@testable import SMTPCore

/// Rule-breaking input: accepted, kept byte for byte, and flagged.
@Suite("SMTPDialogue flags")
struct DialogueFlagsTests {
    @Test("bare LF on commands and replies")
    func bareLF() {
        let t = play([.server("220 hi\n"), .client("EHLO c\n"), .server("250-a\n250 b\r\n"), .client("QUIT\r\n")])
        #expect(t.log == ["S 220 greeting [bare_lf]", "C EHLO [bare_lf]", "S 250 EHLO (2 lines) [bare_lf]", "C QUIT"])
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

    @Test("a banner line before the greeting does not take the greeting's slot")
    func notAReplyBeforeGreeting() {
        let t = play([.server("* proxy banner\r\n220 mail.example.com ESMTP\r\n"), .client("QUIT\r\n"), .server("221 bye\r\n")])
        #expect(t.log == ["S - none [not_a_reply]", "S 220 greeting", "C QUIT", "S 221 QUIT"])
    }

    @Test("a reply to an earlier AUTH does not pull the client out of message data")
    func strayAuthReplyDuringData() {
        // A client that does not wait for the AUTH exchange (or a capture that orders its segments
        // that way): the 334 comes while the message is being sent.
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH LOGIN\r\nDATA\r\nline one\r\n"),
            .server("334 VXNlcm5hbWU6\r\n"),
            .client(".\r\nQUIT\r\n"),
            .server("354 go\r\n250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.observer.message(1) == Array("line one\r\n"))
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.observer.authResponses.isEmpty)
        #expect(t.observer.verbs == [.auth, .data, .quit])
    }

    @Test("a non-reply line inside a multi-line reply ends it and stands alone")
    func notAReplyInsideMultiLine() {
        let t = play([.server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250-a\r\njunk\r\n"), .client("QUIT\r\n")])
        #expect(t.observer.replies.count == 3)
        #expect(t.observer.replies[1].raw == Array("250-a\r\n"))
        #expect(t.observer.replies[1].code == 250)
        #expect(t.observer.replies[2].flags.contains(.notAReply))
    }

    @Test("replies with no command waiting are unsolicited")
    func unsolicited() {
        let t = play([.server("250 4.4.2 ok\r\n")], expectGreeting: false)
        #expect(t.log == ["S 250 none [unsolicited]"])
        // Mid-session, a 220/421/554 before any command is the greeting the capture began with.
        let g = play([.server("421 4.4.2 busy\r\n"), .client("QUIT\r\n"), .server("421 4.4.2 busy\r\n")], expectGreeting: false)
        #expect(g.log == ["S 421 greeting", "C QUIT", "S 421 QUIT"])
        let u = play([.server("220 hi\r\n421 4.3.2 shutting down\r\n")])
        #expect(u.log == ["S 220 greeting", "S 421 none [unsolicited]"])
        #expect(u.summary.lastReplyCode == 421)
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
    }

    @Test("a multi-line reply cut short is reported on finish")
    func unterminatedMultiLine() {
        let t = play([.server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250-a\r\n250-b\r\n")])
        #expect(t.log == ["S 220 greeting", "C EHLO", "S 250 EHLO (2 lines) [unterminated]"])
    }

    @Test("nothing is reported twice when finish is called on an idle dialogue")
    func finishIdle() {
        var t = play([.server("220 hi\r\n"), .client("QUIT\r\n"), .server("221 bye\r\n")])
        let before = t.observer.events
        t.dialogue.finish(time: Timestamp(nanoseconds: 0), observer: t.observer)
        #expect(t.observer.events == before)
        expectStreamsReproduced(t)
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
        #expect(t.summary.senders.map(\.address) == [ByteString([0xFF, 0xFE] + Array("@x".utf8))])
    }

    @Test("the dialogue and SMTPCommand agree on the verb of a line", arguments: [
        "HELO x\r\n", "mail FROM:<a@b>\r\n", "NOOP\r\n", "XCLIENT a\r\n", " HELO x\r\n", "MAIL\tFROM:<a@b>\r\n", "\r\n",
    ])
    func verbAgreesWithCommandParser(_ line: String) throws {
        let t = play([.server("220 hi\r\n"), .client(ByteString(line))])
        let command = try #require(t.observer.commands.first)
        #expect(command.verb == SMTPCommand(line: command.raw).verb)
    }

    @Test("a line that never ends is reported at the cap as an over-long, unterminated line; the rest of it is a fragment")
    func unterminatedLineCap() {
        let long = [UInt8](repeating: 0x61, count: SMTPLimits.unterminatedLineCap + 1)
        let t = play([.server("220 hi\r\n"), .clientBytes(long), .client("tail\r\nQUIT\r\n")])
        #expect(t.observer.commands.first?.raw.count == long.count)
        let flags = t.observer.events.compactMap { if case .command(_, _, let flags, _) = $0 { flags } else { nil } }
        #expect(flags.first == [.overLength, .unterminated])
        #expect(t.observer.fragments.map(\.raw.count) == [6])
        #expect(t.observer.verbs == [.unknown(ByteString(long)), .quit])
    }
}
