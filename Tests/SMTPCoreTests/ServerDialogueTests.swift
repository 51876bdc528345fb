import SMTPCore
import Testing

/// The dialogue in the server's role: events one at a time, the server's replies steer the mode.
@Suite("SMTPServerDialogue")
struct ServerDialogueTests {
    /// Feeds `input` in pieces of `piece` bytes and answers every event with the code `answer`
    /// gives; returns the events and the codes.
    static func run(_ input: String, piece: Int = .max, limits: SMTPServerDialogue.Limits = .init(),
                    answer: (SMTPServerDialogue.Event) -> Int) -> [SMTPServerDialogue.Event] {
        var dialogue = SMTPServerDialogue(limits: limits)
        var events: [SMTPServerDialogue.Event] = []
        let bytes = Array(input.utf8)
        var offset = 0
        repeat {
            let end = min(bytes.count, offset + max(1, min(piece, bytes.count)))
            dialogue.receive(Array(bytes[offset..<end]))
            offset = end
            while let event = dialogue.next() {
                events.append(event)
                dialogue.replied(answer(event))
            }
        } while offset < bytes.count
        return events
    }

    /// ``describe(_:)`` without the pipelining mark (which depends on how the bytes were cut).
    static func plain(_ event: SMTPServerDialogue.Event) -> String {
        describe(event).replacingOccurrences(of: " [pipelined]", with: "")
    }

    static func describe(_ event: SMTPServerDialogue.Event) -> String {
        switch event {
        case .command(let line): "C " + String(decoding: line.content, as: UTF8.self) + (line.pipelined ? " [pipelined]" : "")
        case .authResponse(let line): "A " + String(decoding: line.content, as: UTF8.self)
        case .message(let message): "M " + String(decoding: message.content, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "|")
        case .chunk(let chunk): "B \(chunk.size)\(chunk.last ? " LAST" : "")" + (chunk.message.map { " = " + String(decoding: $0.content, as: UTF8.self) } ?? "")
        case .lineTooLong(let n): "TOO LONG \(n)"
        }
    }

    /// A server that accepts everything: 354 to DATA, 334 once to AUTH, 220 to STARTTLS, 221 to QUIT.
    static func accepting(_ event: SMTPServerDialogue.Event) -> Int {
        switch event {
        case .command(let line):
            switch line.verb {
            case .data: 354
            case .auth: 334
            case .starttls: 220
            case .quit: 221
            default: 250
            }
        case .authResponse: 235
        case .message, .chunk: 250
        case .lineTooLong: 500
        }
    }

    @Test("a whole session, in every piece size: the same events")
    func wholeSession() {
        let input = "EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nSubject: x\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n"
        let expected = ["C EHLO c", "C MAIL FROM:<a@b>", "C RCPT TO:<c@d>", "C DATA", "M Subject: x||.dot|body|", "C QUIT"]
        for piece in [1, 2, 3, 5, 7, 64, Int.max] {
            let events = Self.run(input, piece: piece, answer: Self.accepting).map(Self.describe)
            // In one piece every command after the first was sent before the previous reply.
            #expect(events.map { $0.replacingOccurrences(of: " [pipelined]", with: "") } == expected, "piece \(piece)")
        }
    }

    @Test("pipelined commands come one per reply, in order, flagged as pipelined")
    func pipelining() {
        let events = Self.run("MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n", answer: Self.accepting).map(Self.describe)
        #expect(events == ["C MAIL FROM:<a@b>", "C RCPT TO:<c@d> [pipelined]", "C DATA [pipelined]"])
        var dialogue = SMTPServerDialogue()
        dialogue.receive(Array("NOOP\r\nNOOP\r\n".utf8))
        #expect(dialogue.next() != nil)
        #expect(dialogue.next() == nil, "the second command waits for the first one's reply")
        #expect(dialogue.awaitingReply)
        dialogue.replied(250)
        #expect(dialogue.next() != nil)
    }

    @Test("a refused DATA leaves the client in command mode: what follows is commands, not content")
    func refusedData() {
        let events = Self.run("DATA\r\nSubject: x\r\n.\r\nQUIT\r\n") { event in
            if case .command(let line) = event, line.verb == .data { return 554 }
            return Self.accepting(event)
        }.map(Self.describe)
        #expect(events == ["C DATA", "C Subject: x [pipelined]", "C . [pipelined]", "C QUIT [pipelined]"])
    }

    @Test("the `.` line ends a message in any segmentation; a dot alone at a segment's end waits")
    func dotLine() {
        for piece in 1...12 {
            let events = Self.run("DATA\r\na\r\n.b\r\n.\r\nNOOP\r\n", piece: piece, answer: Self.accepting).map(Self.describe)
            #expect(events.prefix(2) == ["C DATA", "M a|b|"], "piece \(piece)")
            #expect(events.count == 3)
        }
    }

    @Test("bare LFs and lines over 1000 octets in DATA are flagged; `\\n.\\n` ends the message as `\\r\\n.\\r\\n` does")
    func dataFlags() {
        let long = String(repeating: "x", count: 1001)
        let events = Self.run("DATA\r\nok\r\n\(long)\r\nbare\n.\n", answer: Self.accepting)
        guard case .message(let message) = events.last else { Issue.record("no message"); return }
        #expect(message.bareLF && message.overLength)
        #expect(message.size == 4 + 1003 + 5)
        let clean = Self.run("DATA\r\nok\r\n.\r\n", answer: Self.accepting)
        guard case .message(let plain) = clean.last else { Issue.record("no message"); return }
        #expect(!plain.bareLF && !plain.overLength)
    }

    @Test("STARTTLS then RSET in one write: after the 220 the RSET is thrown away, never read")
    func startTLSInjection() {
        var dialogue = SMTPServerDialogue()
        dialogue.receive(Array("STARTTLS\r\nRSET\r\n".utf8))
        guard case .command(let line)? = dialogue.next() else { Issue.record("no command"); return }
        #expect(line.verb == .starttls)
        #expect(dialogue.replied(220) == 6)
        #expect(dialogue.next() == nil)
        // What the TLS layer hands in next (decrypted) is read afresh.
        dialogue.receive(Array("EHLO again\r\n".utf8))
        guard case .command(let after)? = dialogue.next() else { Issue.record("no command after TLS"); return }
        #expect(after.verb == .ehlo && !after.pipelined)
    }

    @Test("a refused STARTTLS keeps the pipelined command")
    func refusedStartTLS() {
        let events = Self.run("STARTTLS\r\nRSET\r\n") { event in
            if case .command(let line) = event, line.verb == .starttls { return 454 }
            return 250
        }.map(Self.describe)
        #expect(events == ["C STARTTLS", "C RSET [pipelined]"])
    }

    @Test("AUTH: lines after a 334 are AUTH responses, until another reply")
    func auth() {
        var challenges = 0
        let events = Self.run("AUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nNOOP\r\n") { event in
            switch event {
            case .command(let line) where line.verb == .auth: return 334
            case .authResponse:
                challenges += 1
                return challenges == 1 ? 334 : 235
            default: return 250
            }
        }.map(Self.describe)
        #expect(events == ["C AUTH LOGIN", "A dXNlcg==", "A cGFzcw==", "C NOOP [pipelined]"])
    }

    @Test("BDAT: each chunk whole, in any segmentation, the LAST one with the message")
    func bdat() {
        for piece in [1, 3, 1000] {
            let events = Self.run("BDAT 5\r\nhel\r\nBDAT 3 LAST\r\nlo!NOOP\r\n", piece: piece, answer: Self.accepting).map(Self.plain)
            #expect(events == ["B 5", "B 3 LAST = hel\r\nlo!", "C NOOP"], "piece \(piece)")
        }
        // An argument that does not parse is a command, flagged, and no chunk is read.
        let bad = Self.run("BDAT x\r\nNOOP\r\n", answer: Self.accepting)
        guard case .command(let line) = bad.first else { Issue.record("no command"); return }
        #expect(line.flags.contains(.malformed))
    }

    @Test("RSET between chunks: the next BDAT starts a new message")
    func bdatReset() {
        let events = Self.run("BDAT 2\r\nabRSET\r\nBDAT 2 LAST\r\ncd", answer: Self.accepting).map(Self.plain)
        #expect(events == ["B 2", "C RSET", "B 2 LAST = cd"])
    }

    @Test("a line over the limit gets its own event; one that never ends is answered at once and dropped as it comes")
    func longLines() {
        let limits = SMTPServerDialogue.Limits(commandLine: 100)
        let events = Self.run("NOOP \(String(repeating: "y", count: 200))\r\nQUIT\r\n", limits: limits, answer: Self.accepting).map(Self.plain)
        #expect(events == ["TOO LONG 207", "C QUIT"])

        var dialogue = SMTPServerDialogue(limits: limits)
        var answered = 0
        let piece = [UInt8](repeating: 0x7A, count: 64 << 10)
        for _ in 0..<160 {  // 10 MiB without an LF
            dialogue.receive(piece)
            while let event = dialogue.next() {
                if case .lineTooLong = event { answered += 1 }
                dialogue.replied(500)
            }
            #expect(dialogue.bufferedBytes <= piece.count + limits.commandLine)
        }
        dialogue.receive(Array("\r\nNOOP\r\n".utf8))
        guard case .command(let line)? = dialogue.next() else { Issue.record("no command after the long line"); return }
        #expect(answered == 1 && line.verb == .noop)
    }

    @Test("a message over the size limit is read to its end, its content cut at the limit")
    func messageSize() {
        let limits = SMTPServerDialogue.Limits(messageSize: 10)
        let events = Self.run("DATA\r\n0123456789abcdef\r\n.\r\nNOOP\r\n", limits: limits, answer: Self.accepting)
        guard case .message(let message) = events[1] else { Issue.record("no message"); return }
        #expect(message.tooLarge && message.content.count == 10 && message.size == 18)
        #expect(Self.plain(events[2]) == "C NOOP")
    }

    @Test("after QUIT's 221 (or a 421) nothing more is read")
    func closed() {
        let events = Self.run("QUIT\r\nNOOP\r\n", answer: Self.accepting).map(Self.describe)
        #expect(events == ["C QUIT"])
        let shut = Self.run("NOOP\r\nNOOP\r\n") { _ in 421 }.map(Self.describe)
        #expect(shut == ["C NOOP"])
    }
}
