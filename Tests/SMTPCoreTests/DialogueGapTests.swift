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
            "S 220 greeting", "C MAIL", "C RCPT [unterminated]", "G client 10", "F client xample.com>\\x0D\\x0A", "C QUIT",
            "S 250 MAIL", "S 250 RCPT", "S 221 QUIT",
        ])
        #expect(t.summary.gapBytes == 10)
    }

    @Test("a gap at a line boundary: a line that is plainly a command is read as one")
    func gapAtLineBoundary() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .gap(.client, 6), .client("QUIT\r\nRSET\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "G client 6", "C QUIT", "C RSET"])
    }

    @Test("after a gap, a line that is not plainly a command or reply is a fragment")
    func gapBeforeUnknownLine() {
        let t = play([.server("220 hi\r\n"), .client("NOOP\r\n"), .gap(.client, 6), .client("ample.com>\r\nRSET\r\n"),
                      .gap(.server, 3), .server(" OK\r\n250 OK\r\n")])
        #expect(t.log == ["S 220 greeting", "C NOOP", "G client 6", "F client ample.com>\\x0D\\x0A", "C RSET",
                          "G server 3", "F server  OK\\x0D\\x0A", "S 250 NOOP"])
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
