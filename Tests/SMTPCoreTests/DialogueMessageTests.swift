import Testing
@testable import SMTPCore

/// Message content: DATA with dot-stuffing under every segmentation, and BDAT chunks.
@Suite("SMTPDialogue message data")
struct DialogueMessageTests {
    // MARK: DATA, drip-fed

    /// A message with every hard case for the terminator search: dot lines, `.` + CR without LF,
    /// a line ending in a dot, bare LF before a dot, a CR CR LF.
    static let trickyMessage = Array("Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n.\rnot the end\r\nend.\r\n\r\n.a\nb\n.c\r\r\n..\r\nlast\r\n")
    static let commandsBeforeData = Array("EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
    static let commandsAfterData = Array("QUIT\r\n")
    static var clientStream: [UInt8] { commandsBeforeData + DotStuffing.stuff(trickyMessage) + commandsAfterData }

    /// How the server's replies are interleaved with the drip-fed client stream.
    enum Interleaving: CaseIterable, Sendable {
        /// The whole client stream first, then the replies (a client that does not wait for 354).
        case clientFirst
        /// Replies up to the 354 arrive before the message content, as in a real session.
        case realistic
    }

    /// Plays the session with the client's bytes cut into `clientPieces`.
    static func playDrip(_ clientPieces: [[UInt8]], _ interleaving: Interleaving) -> Transcript {
        switch interleaving {
        case .clientFirst:
            return play([.server("220 hi\r\n")] + clientPieces.map(Step.clientBytes)
                        + [.server("250-x\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n354 go\r\n250 queued\r\n221 bye\r\n")])
        case .realistic:
            // Pieces are re-cut at the end of DATA\r\n so the 354 can go in between.
            let all = clientPieces.flatMap { $0 }
            var offsets: [Int] = []
            var offset = 0
            for piece in clientPieces { offset += piece.count; offsets.append(offset) }
            let boundary = commandsBeforeData.count
            let cuts = (offsets.filter { $0 != boundary } + [boundary]).sorted()
            var steps: [Step] = [.server("220 hi\r\n")]
            var start = 0
            for cut in cuts where cut > start {
                steps.append(.clientBytes(Array(all[start..<cut])))
                if cut == boundary { steps.append(.server("250-x\r\n250 PIPELINING\r\n250 ok\r\n250 ok\r\n354 go\r\n")) }
                start = cut
            }
            steps.append(.server("250 queued\r\n221 bye\r\n"))
            return play(steps)
        }
    }

    static func expectSameAsWhole(_ t: Transcript, _ interleaving: Interleaving, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let baseline = playDrip([clientStream], interleaving)
        #expect(t.observer.normalizedEvents == baseline.observer.normalizedEvents, "\(what)", sourceLocation: sourceLocation)
        #expect(t.observer.verbs == [.ehlo, .mail, .rcpt, .data, .quit], "\(what)", sourceLocation: sourceLocation)
        #expect(t.observer.message(1) == trickyMessage, "\(what)", sourceLocation: sourceLocation)
        #expect(DotStuffing.unstuff(t.observer.wireMessage(1)) == trickyMessage, "\(what)", sourceLocation: sourceLocation)
        #expect(t.observer.messageEnds.map(\.size) == [trickyMessage.count], "\(what)", sourceLocation: sourceLocation)
        #expect(t.observer.messageEnds.map(\.raw) == [Array(".\r\n")], "\(what)", sourceLocation: sourceLocation)
        #expect(t.observer.raw(.client) == clientStream, "\(what)", sourceLocation: sourceLocation)
        #expect(t.summary.messageReplyCodes == [250], "\(what)", sourceLocation: sourceLocation)
    }

    @Test("the whole stream at once: the reference run", arguments: Interleaving.allCases)
    func whole(_ interleaving: Interleaving) {
        let t = Self.playDrip([Self.clientStream], interleaving)
        #expect(t.observer.message(1) == Self.trickyMessage)
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.summary.completedMessages == 1)
        #expect(t.summary.messageBytes == Self.trickyMessage.count)
        #expect(t.observer.replyContexts == [.greeting, .command(.ehlo), .command(.mail), .command(.rcpt), .command(.data), .message, .command(.quit)])
    }

    @Test("drip-fed in fixed-size chunks", arguments: [1, 2, 3, 7], Interleaving.allCases)
    func fixedChunks(_ size: Int, _ interleaving: Interleaving) {
        let t = Self.playDrip(chunks(Self.clientStream, size: size), interleaving)
        Self.expectSameAsWhole(t, interleaving, "chunks of \(size)")
    }

    @Test("split in two at every byte offset", arguments: Interleaving.allCases)
    func everySplitPoint(_ interleaving: Interleaving) {
        let stream = Self.clientStream
        for cut in 1..<stream.count {
            let t = Self.playDrip(pieces(stream, cutAt: [cut]), interleaving)
            Self.expectSameAsWhole(t, interleaving, "cut at \(cut)")
        }
    }

    @Test("split in three at every pair of offsets around the tricky lines")
    func everyPairOfSplitPoints() {
        // The message content from its start to "end.\r\n\r\n" holds all the dot lines.
        let stream = Self.clientStream
        let start = Self.commandsBeforeData.count
        let end = start + 50
        for first in start..<end {
            for second in (first + 1)...end {
                let t = Self.playDrip(pieces(stream, cutAt: [first, second]), .realistic)
                Self.expectSameAsWhole(t, .realistic, "cuts at \(first), \(second)")
            }
        }
    }

    @Test("the terminator split across segments at every position", arguments: [
        ["a\r\n", ".\r\n"], ["a\r\n.", "\r\n"], ["a\r\n.\r", "\n"], ["a\r", "\n.\r\n"], ["a", "\r\n.\r\n"],
        ["a\r\n", ".", "\r", "\n"], ["a\r\n.", "\r", "\n"], ["a\r\n", ".", "\r\n"], ["a", "\r", "\n", ".", "\r", "\n"],
        ["a\n", ".\n"], ["a\n.", "\n"],
    ] as [[String]])
    func terminatorSplits(_ segments: [String]) {
        let t = play([.server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n")]
                     + segments.map { Step.client(ByteString($0)) }
                     + [.client("QUIT\r\n"), .server("250 ok\r\n221 bye\r\n")])
        let content = segments.joined()
        let expected = Array(content.utf8.dropLast(content.hasSuffix("\r\n") ? 3 : 2))
        #expect(t.observer.message(1) == expected)
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.observer.messageEnds.map(\.size) == [expected.count])
        #expect(t.observer.verbs == [.data, .quit])
        #expect(t.observer.replyContexts == [.greeting, .command(.data), .message, .command(.quit)])
    }

    @Test("held dot followed by something else is message content", arguments: [
        (["a\r\n.", "b\r\n.\r\n"], "a\r\nb\r\n"),
        (["a\r\n.", ".\r\n.\r\n"], "a\r\n.\r\n"),
        (["a\r\n.\r", "b\r\n.\r\n"], "a\r\n\rb\r\n"),
        (["a\r\n.\r", "\r\n.\r\n"], "a\r\n\r\r\n"),
        (["a\r\n.\r", ".\r\n.\r\n"], "a\r\n\r.\r\n"),
        ([".", "x\r\n.\r\n"], "x\r\n"),
        ([".", ".", "\r\n", ".", "\r\n"], ".\r\n"),
    ] as [([String], String)])
    func heldDotNotTerminator(_ segments: [String], _ message: String) {
        let t = play([.server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n")]
                     + segments.map { Step.client(ByteString($0)) }
                     + [.client("QUIT\r\n")])
        #expect(t.observer.message(1) == Array(message))
        #expect(t.observer.messageEnds.map(\.size) == [message.utf8.count])
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.observer.verbs == [.data, .quit])
    }

    @Test("every sample message goes through DATA intact, whole and byte by byte", arguments: SampleMessage.all)
    func sampleMessages(_ sample: SampleMessage) {
        let content = DotStuffing.stuff(sample.bytes)
        for size in [Int.max, 1] {
            let steps: [Step] = [.server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n")]
                + chunks(content, size: min(size, max(content.count, 1))).map(Step.clientBytes)
                + [.client("QUIT\r\n"), .server("250 ok\r\n221 bye\r\n")]
            let t = play(steps)
            #expect(t.observer.message(1) == sample.delivered, "chunk size \(size)")
            #expect(DotStuffing.unstuff(t.observer.wireMessage(1)) == sample.delivered, "chunk size \(size)")
            #expect(t.observer.messageEnds.map(\.size) == [sample.delivered.count], "chunk size \(size)")
            #expect(t.observer.messageEnds.map(\.complete) == [true], "chunk size \(size)")
            #expect(t.observer.verbs == [.data, .quit], "chunk size \(size)")
            #expect(t.summary.messageBytes == sample.delivered.count)
        }
    }

    @Test("random messages under random segmentation", arguments: 1...8 as ClosedRange<UInt64>)
    func randomMessages(seed: UInt64) {
        var random = SplitMix64(seed: seed)
        let alphabet: [UInt8] = [0x2E, 0x2E, 0x0D, 0x0A, 0x0A, 0x61, 0x00, 0xFF]
        for iteration in 0..<150 {
            let length = Int.random(in: 0...40, using: &random)
            let message = (0..<length).map { _ in alphabet.randomElement(using: &random)! }
            let sample = SampleMessage("random", message)
            let stream = Array("DATA\r\n") + DotStuffing.stuff(message) + Array("QUIT\r\n")
            var cuts: [Int] = []
            var offset = 0
            while true {
                offset += Int.random(in: 1...6, using: &random)
                if offset >= stream.count { break }
                cuts.append(offset)
            }
            let t = play([.server("220 hi\r\n")] + pieces(stream, cutAt: cuts).map(Step.clientBytes) + [.server("354 go\r\n250 ok\r\n221 bye\r\n")])
            let context = "seed \(seed) iteration \(iteration): \(ByteString(message)) cut at \(cuts)"
            #expect(t.observer.message(1) == sample.delivered, "\(context)")
            #expect(t.observer.messageEnds.map(\.size) == [sample.delivered.count], "\(context)")
            #expect(t.observer.verbs == [.data, .quit], "\(context)")
            #expect(t.observer.raw(.client) == stream, "\(context)")
        }
    }

    // MARK: finish inside DATA

    @Test("finish inside DATA reports the message as incomplete", arguments: [
        ("partial\r\nno end", "partial\r\nno end", 15),
        // A held `.` or `.\r` may be the start of the `.` line: not content, a fragment.
        ("a\r\n.", "a\r\n", 3),
        ("a\r\n.\r", "a\r\n", 3),
        ("", "", 0),
    ] as [(String, String, Int)])
    func finishInsideData(_ content: String, _ message: String, _ size: Int) {
        let t = play([.server("220 hi\r\n"), .client("DATA\r\n"), .server("354 go\r\n"), .client(ByteString(content))])
        #expect(t.observer.messageEnds.count == 1)
        #expect(t.observer.messageEnds.first?.complete == false)
        #expect(t.observer.messageEnds.first?.size == size)
        #expect(t.observer.messageEnds.first?.raw == [])
        #expect(t.observer.wireMessage(1) == Array(message.utf8))
        #expect(t.summary.completedMessages == 0)
        #expect(t.summary.messageBytes == 0)
    }

    // MARK: BDAT

    static let chunkingPrelude: [Step] = [
        .server("220 hi\r\n"),
        .client("EHLO c\r\n"),
        .server("250-x\r\n250 CHUNKING\r\n"),
    ]

    @Test("pipelined BDAT chunks: taken by byte count, and the LAST reply ends the message")
    func pipelinedBDAT() {
        let t = play(Self.chunkingPrelude + [
            .client("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 5\r\nhelloBDAT 0 LAST\r\n"),
            .server("250 ok\r\n250 ok\r\n250 2.0.0 5 octets received\r\n554 5.7.1 rejected by content filter\r\n"),
            .client("QUIT\r\n"),
            .server("221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C EHLO", "S 250 EHLO (2 lines)",
            "C MAIL", "C RCPT", "C BDAT", "D1 BDAT hello", "C BDAT", "E1 BDAT size=5",
            "S 250 MAIL", "S 250 RCPT", "S 250 BDAT", "S 554 BDAT",
            "C QUIT", "S 221 QUIT",
        ])
        #expect(t.observer.message(1) == Array("hello"))
        #expect(t.summary.completedMessages == 1)
        #expect(t.summary.messageBytes == 5)
        // One message, ended by the reply to BDAT 0 LAST.
        #expect(t.summary.messageReplyCodes == [554])
    }

    @Test("BDAT chunks answered one at a time")
    func lockstepBDAT() {
        let t = play(Self.chunkingPrelude + [
            .client("BDAT 3\r\nabc"), .server("250 3 octets\r\n"),
            .client("BDAT 2 LAST\r\nde"), .server("250 queued\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C EHLO", "S 250 EHLO (2 lines)",
            "C BDAT", "D1 BDAT abc", "S 250 BDAT", "C BDAT", "D1 BDAT de", "E1 BDAT size=5", "S 250 BDAT",
        ])
        #expect(t.summary.messageReplyCodes == [250])
    }

    static let binaryChunk = Array(".\r\n..x\r\n\r\n.\r\nDATA\r\n") + [0x00, 0xFF, 0x0A, 0x2E]

    @Test("BDAT content is not unstuffed and holds no terminator, whatever the segmentation", arguments: [Int.max, 1, 2, 3, 7])
    func bdatIsBinary(_ size: Int) {
        let chunk = Self.binaryChunk
        let stream = Array("BDAT \(chunk.count) LAST\r\n") + chunk + Array("QUIT\r\n")
        let t = play([.server("220 hi\r\n")] + chunks(stream, size: min(size, stream.count)).map(Step.clientBytes) + [.server("250 ok\r\n221 bye\r\n")])
        #expect(t.observer.message(1) == chunk)
        #expect(t.observer.messageEnds.map(\.size) == [chunk.count])
        #expect(t.observer.messageEnds.map(\.complete) == [true])
        #expect(t.observer.messageEnds.map(\.transfer) == [.bdat])
        #expect(t.observer.verbs == [.bdat, .quit])
        #expect(t.observer.events.allSatisfy {
            if case .messageData(_, _, let transfer, let atLineStart) = $0 { transfer == .bdat && !atLineStart } else { true }
        })
        #expect(t.observer.replyContexts == [.greeting, .command(.bdat), .command(.quit)])
    }

    @Test("BDAT 0 LAST alone is an empty, complete message")
    func bdatZeroLast() {
        let t = play([.server("220 hi\r\n"), .client("BDAT 0 LAST\r\n"), .server("250 ok\r\n"), .client("QUIT\r\n")])
        #expect(t.log == ["S 220 greeting", "C BDAT", "E1 BDAT size=0", "S 250 BDAT", "C QUIT"])
        #expect(t.summary.completedMessages == 1)
        #expect(t.summary.messageReplyCodes == [250])
    }

    @Test("two BDAT messages are numbered 1 and 2")
    func twoBDATMessages() {
        let t = play([.server("220 hi\r\n"), .client("BDAT 2 LAST\r\nabBDAT 1 LAST\r\nc"), .server("250 one\r\n250 two\r\n")])
        #expect(t.observer.messageEnds.map(\.message) == [1, 2])
        #expect(t.observer.message(1) == Array("ab"))
        #expect(t.observer.message(2) == Array("c"))
        #expect(t.summary.completedMessages == 2)
        #expect(t.summary.messageBytes == 3)
        #expect(t.summary.messageReplyCodes == [250, 250])
    }

    @Test("invalid BDAT sizes are flagged malformed and the next line is a command", arguments: [
        "BDAT -1", "BDAT 99999999999999999999", "BDAT 1 FIRST", "BDAT", "BDAT x LAST",
    ])
    func malformedBDAT(_ line: String) {
        let t = play([.server("220 hi\r\n"), .client(ByteString(line + "\r\nQUIT\r\n")), .server("501 syntax\r\n221 bye\r\n")])
        #expect(t.log == ["S 220 greeting", "C BDAT [malformed]", "C QUIT", "S 501 BDAT", "S 221 QUIT"])
        #expect(t.observer.messageEnds.isEmpty)
        #expect(t.summary.completedMessages == 0)
    }

    @Test("finish inside a BDAT chunk reports the message as incomplete")
    func finishInsideBDAT() {
        let t = play([.server("220 hi\r\n"), .client("BDAT 10 LAST\r\nhello")])
        #expect(t.log == ["S 220 greeting", "C BDAT", "D1 BDAT hello", "E1 BDAT size=5 incomplete"])
        #expect(t.summary.completedMessages == 0)
    }

    @Test("finish between BDAT chunks reports the message as incomplete")
    func finishBetweenChunks() {
        let t = play([.server("220 hi\r\n"), .client("BDAT 3\r\nabc"), .server("250 ok\r\n")])
        #expect(t.log == ["S 220 greeting", "C BDAT", "D1 BDAT abc", "S 250 BDAT", "E1 BDAT size=3 incomplete"])
        #expect(t.summary.completedMessages == 0)
        #expect(t.summary.messageReplyCodes.isEmpty)
    }
}

/// Transactions that are abandoned part-way through a BDAT message.
@Suite("SMTPDialogue abandoned BDAT transactions")
struct DialogueAbandonedBDATTests {
    @Test("RSET after a BDAT chunk abandons the message; the next BDAT starts message 2")
    func rsetAfterChunk() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 3\r\nabc"),
            .server("250 ok\r\n250 ok\r\n552 5.3.4 message too big\r\n"),
            .client("RSET\r\n"), .server("250 ok\r\n"),
            .client("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nBDAT 2 LAST\r\nde"),
            .server("250 ok\r\n250 ok\r\n250 queued\r\n"),
        ])
        #expect(t.observer.message(1) == Array("abc"))
        #expect(t.observer.message(2) == Array("de"))
        #expect(t.observer.messageEnds.map(\.message) == [1, 2])
        #expect(t.observer.messageEnds.map(\.complete) == [false, true])
        #expect(t.summary.completedMessages == 1)
        #expect(t.summary.messageBytes == 2)
    }

    @Test("DATA while a BDAT message is open ends the BDAT message before the DATA one begins")
    func dataAfterChunk() {
        let t = play([
            .server("220 hi\r\n"),
            .client("BDAT 3\r\nabc"), .server("250 ok\r\n"),
            .client("DATA\r\n"), .server("354 go\r\n"),
            .client("x\r\n.\r\n"), .server("250 ok\r\n"),
        ])
        #expect(t.observer.messageEnds.map(\.message) == [1, 2])
        #expect(t.observer.messageEnds.map(\.transfer) == [.bdat, .data])
        #expect(t.observer.messageEnds.map(\.complete) == [false, true])
        #expect(t.observer.message(2) == Array("x\r\n"))
    }
}
