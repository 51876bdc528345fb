import Testing
@testable import SMTPCore

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
            "S 220 greeting", "C MAIL", "C RCPT [unterminated]", "G client 10", "F client secret xample.com>\\x0D\\x0A", "C QUIT",
            "S 250 MAIL", "S 250 RCPT", "S 221 QUIT",
        ])
        #expect(t.summary.gapBytes == 10)
    }

    @Test("a short gap at a line start cut a command's start: its reply answers a lost command")
    func shortGapAtLineStart() {
        // "NO" of NOOP is lost: "OP" is a fragment, and the 250 answers the command the gap cut.
        let t = play([.server("220 hi\r\n"), .client("EHLO a\r\n"), .server("250 hi\r\n"),
                      .gap(.client, 2), .client("OP\r\nQUIT\r\n"), .server("250 ok\r\n221 bye\r\n")])
        #expect(t.log == ["S 220 greeting", "C EHLO", "S 250 EHLO", "G client 2", "F client secret OP\\x0D\\x0A", "C QUIT",
                          "S 250 unknown", "S 221 QUIT"])
    }

    @Test("a gap at a line boundary: a line that is plainly a command is read as one")
    func gapAtLineBoundary() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .gap(.client, 6), .client("QUIT\r\nRSET\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "G client 6", "C QUIT", "C RSET"])
    }

    @Test("after a gap, a line that is not plainly a command or reply is a fragment; on the client's side, a secret until a known command comes")
    func gapBeforeUnknownLine() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .gap(.client, 6), .client("ample.com>\r\nRSET\r\n"),
                      .gap(.server, 3), .server(" OK\r\n250 OK\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "G client 6", "F client secret ample.com>\\x0D\\x0A", "C RSET",
                          "G server 3", "F server  OK\\x0D\\x0A", "S 250 NOOP"])
    }

    @Test("a gap in DATA: the line it cut is a fragment, never joined; the message ends incomplete at its dot")
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
            "D1 DATA line one\\x0D\\x0Aline t", "G client 20", "F client wo ends\\x0D\\x0A", "D1 DATA more\\x0D\\x0A",
            "E1 DATA size=22 incomplete .\\x0D\\x0A", "C QUIT", "S 250 message", "S 221 QUIT",
        ])
        #expect(t.summary.gapBytes == 20)
        #expect(t.summary.completedMessages == 0, "a message with a hole is not complete")
    }

    /// Hardening issue, item 1: the hole swallowed the end of the message and its `.` line; the
    /// QUIT that followed was joined onto the message and the server's replies were unsolicited.
    @Test("a gap that swallows the dot line: the server's reply ends the message, and QUIT is a command")
    func gapSwallowsTerminator() {
        let t = play([
            .server("220 hi\r\n"),
            .client("DATA\r\n"), .server("354 go\r\n"),
            .client("Date: Tue, 04 Mar 2025 07:54:5"),
            .gap(.client, 8),  // "0 +0000\r\n.\r\n" lost
            .client("QUIT\r\n"),
            .server("250 2.0.0 queued\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "S 354 DATA", "D1 DATA Date: Tue, 04 Mar 2025 07:54:5", "G client 8",
            "E1 DATA size=30 incomplete", "S 250 message", "C QUIT", "S 221 QUIT",
        ])
        #expect(t.summary.messageReplyCodes == [250])
        #expect(!t.observer.events.contains { if case .reply(_, _, _, _, let flags) = $0 { flags.contains(.unsolicited) } else { false } })
    }

    @Test("the same when the reply comes before the client's next bytes")
    func gapThenReplyThenQuit() {
        let t = play([
            .server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n"),
            .client("body\r\n"), .gap(.client, 3), .server("250 ok\r\n"), .client("QUIT\r\n"), .server("221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "S 354 DATA", "D1 DATA body\\x0D\\x0A", "G client 3", "E1 DATA size=6 incomplete",
            "S 250 message", "C QUIT", "S 221 QUIT",
        ])
    }

    /// Hardening issue, item 1: a whole pipelined command line falls into a gap; the replies after
    /// it must still pair with DATA, or the message is read as commands.
    @Test("a gap that swallows a pipelined command: a reply that cannot answer the next command answers the lost one")
    func gapSwallowsPipelinedCommand() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@b>\r\n"), .gap(.client, 15), .client("DATA\r\n"),
            .server("250 ok\r\n250 ok\r\n354 go\r\n"),
            .client("Subject: x\r\n\r\nhi\r\n.\r\n"), .server("250 queued\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C MAIL", "G client 15", "C DATA", "S 250 MAIL", "S 250 unknown", "S 354 DATA",
            "D1 DATA Subject: x\\x0D\\x0A\\x0D\\x0Ahi\\x0D\\x0A", "E1 DATA size=18 .\\x0D\\x0A", "S 250 message",
        ])
        #expect(t.summary.completedMessages == 1)
    }

    @Test("after a server gap a reply only DATA can take skips the commands whose replies were lost")
    func serverGapSkipsLostReplies() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n"),
            .server("250 ok\r\n"), .gap(.server, 8), .server("354 go\r\n"),
            .client("x\r\n.\r\n"), .server("250 queued\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C MAIL", "C RCPT", "C DATA", "S 250 MAIL", "G server 8", "S 354 DATA",
            "D1 DATA x\\x0D\\x0A", "E1 DATA size=3 .\\x0D\\x0A", "S 250 message",
        ])
        #expect(t.summary.recipients.first?.replyCode == nil)
    }

    @Test("a gap right after a held dot in DATA: the dot (perhaps the `.` line's) and the cut line are fragments")
    func gapAfterHeldDot() {
        let t = play([
            .server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n"),
            .client("a\r\n."), .gap(.client, 3), .client("x\r\n.\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "S 354 DATA", "D1 DATA a\\x0D\\x0A", "F client .", "G client 3", "F client x\\x0D\\x0A",
            "E1 DATA size=3 incomplete .\\x0D\\x0A",
        ])
    }

    @Test("a gap after DATA before the 354: the dot line in what follows ends the message, and commands resume after it")
    func gapBeforeDataReply() {
        let t = play([
            .server("220 hi\r\n"),
            .client("DATA\r\n"),
            .gap(.client, 10),
            .client("rest\r\n.\r\nQUIT\r\n"),
            .server("354 go\r\n250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C DATA", "G client 10", "F client rest\\x0D\\x0A", "E1 DATA size=0 incomplete .\\x0D\\x0A", "C QUIT",
            "S 354 DATA", "S 250 message", "S 221 QUIT",
        ])
    }

    @Test("a gap after DATA, which is then refused: what followed the hole is commands")
    func gapBeforeRefusedData() {
        let t = play([
            .server("220 hi\r\n"), .client("DATA\r\n"), .gap(.client, 4), .client("NOOP\r\n"),
            .server("554 no valid recipients\r\n250 ok\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C DATA", "G client 4", "S 554 DATA", "C NOOP", "S 250 NOOP"])
        #expect(t.observer.messageEnds.isEmpty)
    }

    @Test("a gap inside a BDAT chunk counts against the chunk; the message is incomplete")
    func gapInBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 10 LAST\r\nabc"), .gap(.client, 4), .client("defQUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT abc", "G client 4", "D1 BDAT def", "E1 BDAT size=10 incomplete", "C QUIT",
            "S 250 BDAT", "S 221 QUIT",
        ])
    }

    @Test("a gap that ends exactly at the end of a BDAT chunk: the next command is read normally")
    func gapToEndOfBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 10 LAST\r\nabc"), .gap(.client, 7), .client("QUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT abc", "G client 7", "E1 BDAT size=10 incomplete", "C QUIT",
            "S 250 BDAT", "S 221 QUIT",
        ])
    }

    @Test("a gap past the end of a BDAT chunk ends the chunk and resynchronises")
    func gapPastBDAT() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 5 LAST\r\nab"), .gap(.client, 10), .client("T\r\nQUIT\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C BDAT", "D1 BDAT ab", "G client 10", "E1 BDAT size=5 incomplete", "F client T\\x0D\\x0A", "C QUIT",
        ])
    }

    @Test("a client gap before MAIL does not make a later BDAT message incomplete")
    func gapBeforeMailThenBDAT() {
        let t = play([
            .server("220 hi\r\n"), .client("EHLO c\r\n"), .server("250 hi\r\n"),
            .gap(.client, 6), .client("MAIL FROM:<a@b>\r\n"), .server("250 ok\r\n250 ok\r\n"),
            .client("BDAT 3 LAST\r\nabc"), .server("250 queued\r\n"),
        ])
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.summary.completedMessages == 1)
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
        t.clientInput += Array("OP\r\n")
        #expect(t.log == ["S 220 greeting", "C NOOP"])
        #expect(t.summary.gapBytes == 0)
        expectStreamsReproduced(t)
    }
}
