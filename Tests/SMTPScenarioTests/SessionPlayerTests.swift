import SMTPCore
import SMTPScenario
import Testing

/// The player on its own: client bytes in, actions out, and the verdict.
@Suite("SessionPlayer")
struct SessionPlayerTests {
    static func session(_ yaml: String) throws -> Scenario.Session {
        let result = ScenarioReader.parse("version: 1\nname: t\nsessions:\n" + yaml, file: "t.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics.map(\.description))")
        return try #require(result.scenario?.sessions.first)
    }

    static func player(_ yaml: String, _ options: SessionPlayer.Options = .init()) throws -> SessionPlayer {
        try SessionPlayer(session: session(yaml), scenarioName: "t", options: options)
    }

    /// The actions as text: `> reply`, `wait 1.5`, `TLS`, `close`, `reset`.
    static func show(_ actions: [SessionPlayer.Action]) -> [String] {
        actions.map { action in
            switch action {
            case .pause(let seconds): "wait \(seconds)"
            case .send(let bytes): "> " + String(decoding: bytes, as: UTF8.self).replacingOccurrences(of: "\r\n", with: "|")
            case .startTLS: "TLS"
            case .close: "close"
            case .reset: "reset"
            }
        }
    }

    static let basic = """
        - greeting: 220 mx
          steps:
          - client: EHLO *
            match: wildcard
            reply: |-
              250-mx
              250 PIPELINING
          - client: MAIL FROM:<a@b>
            reply: 250 ok
          - client: QUIT
            reply: 221 bye
        """

    @Test("a script followed to the end: the replies in order, close after 221, every step passed")
    func followed() throws {
        var player = try Self.player(Self.basic)
        #expect(Self.show(player.start()) == ["> 220 mx|"])
        #expect(Self.show(player.receive(Array("EHLO me\r\n".utf8))) == ["> 250-mx|250 PIPELINING|"])
        // Pipelined, once PIPELINING was advertised.
        #expect(Self.show(player.receive(Array("MAIL FROM:<a@b>\r\nQUIT\r\n".utf8))) == ["> 250 ok|", "> 221 bye|", "close"])
        player.clientClosed()
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(verdict.passed)
        #expect(verdict.notes.isEmpty)
        #expect(verdict.steps.map(\.status) == [.passed, .passed, .passed])
    }

    @Test("strict: a mismatch gets a 503 naming both lines and the script stays, so the client may correct itself")
    func strictMismatch() throws {
        var player = try Self.player(Self.basic)
        _ = player.start()
        _ = player.receive(Array("EHLO me\r\n".utf8))
        #expect(Self.show(player.receive(Array("MAIL FROM:<x@y>\r\n".utf8))) == ["> 503 5.5.1 smtptape: expected 'MAIL FROM:<a@b>' (step 2), got 'MAIL FROM:<x@y>'|"])
        #expect(Self.show(player.receive(Array("MAIL FROM:<a@b>\r\n".utf8))) == ["> 250 ok|"])
        let verdict = player.verdict(session: 1, time: "", client: "")
        let step = try #require(verdict.steps.first { $0.step == 2 })
        #expect(step.status == .mismatched && step.actual == "MAIL FROM:<x@y>" && step.attempts == ["MAIL FROM:<x@y>", "MAIL FROM:<a@b>"])
        #expect(!verdict.passed)
    }

    @Test("--on-mismatch close, and a custom mismatch reply")
    func closeOnMismatch() throws {
        var player = try Self.player(Self.basic, .init(closeOnMismatch: true, mismatchReply: Array("451 4.3.0 try again\r\n".utf8)))
        _ = player.start()
        #expect(Self.show(player.receive(Array("HELO me\r\n".utf8))) == ["> 451 4.3.0 try again|", "close"])
    }

    @Test("--lenient: unscripted commands get default replies and do not fail the session")
    func lenient() throws {
        var player = try Self.player(Self.basic, .init(lenient: true))
        _ = player.start()
        let actions = Self.show(player.receive(Array("EHLO me\r\nNOOP\r\nRSET\r\nMAIL FROM:<a@b>\r\nQUIT\r\n".utf8)))
        #expect(actions == ["> 250-mx|250 PIPELINING|", "> 250 2.0.0 smtptape: ok|", "> 250 2.0.0 smtptape: ok|", "> 250 ok|", "> 221 bye|", "close"])
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(verdict.passed)
        #expect(verdict.steps.filter { $0.status == .unexpected }.map(\.actual) == ["NOOP", "RSET"])
    }

    @Test("QUIT before the script's end: the script's QUIT answers, the steps skipped are missing")
    func earlyQuit() throws {
        var player = try Self.player(Self.basic)
        _ = player.start()
        #expect(Self.show(player.receive(Array("EHLO me\r\nQUIT\r\n".utf8))).suffix(2) == ["> 221 bye|", "close"])
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(verdict.steps.map(\.status) == [.passed, .missing, .passed])
        #expect(!verdict.passed)
        // Without a QUIT in the script: 221 all the same, and the step it came at failed.
        var noQuit = try Self.player("- greeting: 220 mx\n  steps:\n  - client: NOOP\n    reply: 250 ok\n  - client: RSET\n    reply: 250 ok\n")
        _ = noQuit.start()
        #expect(Self.show(noQuit.receive(Array("QUIT\r\n".utf8))) == ["> 221 2.0.0 smtptape: bye (the script expected more)|", "close"])
        #expect(noQuit.verdict(session: 1, time: "", client: "").steps.map(\.status) == [.mismatched, .missing])
    }

    @Test("faults: drop closes, partial cuts the line ending, reset resets, stall answers nothing and reads on")
    func faults() throws {
        for (fault, expected) in [("drop", ["close"]), ("partial", ["> 250 ok", "close"]), ("reset", ["reset"]), ("stall", [])] {
            let reply = fault == "partial" ? "\n    reply: 250 ok" : ""
            var player = try Self.player("""
                - greeting: 220 mx
                  steps:
                  - client: NOOP\(reply)
                    fault: \(fault)
                """)
            _ = player.start()
            #expect(Self.show(player.receive(Array("NOOP\r\n".utf8))) == expected, "\(fault)")
            #expect(Self.show(player.receive(Array("NOOP\r\n".utf8))) == [], "\(fault): nothing more is read")
        }
    }

    @Test("delays always; recorded delays only with --timing recorded, divided by --speed")
    func timing() throws {
        let yaml = """
            - greeting: 220 mx
              recorded-greeting-delay: 0.4
              steps:
              - client: NOOP
                reply: 250 ok
                delay: 1
                recorded-delay: 2
            """
        var fast = try Self.player(yaml)
        #expect(Self.show(fast.start()) == ["> 220 mx|"])
        #expect(Self.show(fast.receive(Array("NOOP\r\n".utf8))) == ["wait 1.0", "> 250 ok|"])
        var recorded = try Self.player(yaml, .init(recordedTiming: true, speed: 2))
        #expect(Self.show(recorded.start()) == ["wait 0.2", "> 220 mx|"])
        #expect(Self.show(recorded.receive(Array("NOOP\r\n".utf8))) == ["wait 2.0", "> 250 ok|"])
    }

    @Test("an unsolicited 421 is sent after the step before it, and the server closes")
    func unsolicited() throws {
        var player = try Self.player("""
            - greeting: 220 mx
              steps:
              - client: NOOP
                reply: 250 ok
              - reply: 421 4.4.2 timeout
                delay: 3
            """)
        _ = player.start()
        #expect(Self.show(player.receive(Array("NOOP\r\n".utf8))) == ["> 250 ok|", "wait 3.0", "> 421 4.4.2 timeout|", "close"])
    }

    @Test("BDAT: chunk replies as recorded, the message compared at LAST; no CHUNKING advertised is noted")
    func bdat() throws {
        var player = try Self.player("""
            - greeting: 220 mx
              steps:
              - message: |
                  hello
                via: BDAT
                chunks: [3, 4]
                chunk-replies: [250 2.0.0 3 octets]
                reply: 250 2.0.0 queued
            """)
        _ = player.start()
        #expect(Self.show(player.receive(Array("BDAT 3\r\nhel".utf8))) == ["> 250 2.0.0 3 octets|"])
        #expect(Self.show(player.receive(Array("BDAT 4 LAST\r\nlo\r\n".utf8))) == ["> 250 2.0.0 queued|"])
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(verdict.passed && verdict.messages.first?.content == Array("hello\r\n".utf8))
        #expect(verdict.notes == ["BDAT was used although the server did not advertise CHUNKING (RFC 3030)"])
    }

    @Test("a message that differs: 554 naming the first differing line; only in dot-stuffing: a note says so")
    func messageMismatch() throws {
        let yaml = """
            - greeting: 220 mx
              steps:
              - client: DATA
                reply: 354 go
              - message: |
                  .hidden
                  b
                reply: 250 ok
            """
        var player = try Self.player(yaml)
        _ = player.start()
        // The client forgot to double the dot: the server takes it away.
        #expect(Self.show(player.receive(Array("DATA\r\n.hidden\r\nb\r\n.\r\n".utf8))).last == "> 554 5.6.0 smtptape: message differs from step 2: line 1: expected '.hidden', got 'hidden'|")
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(verdict.notes.contains("the message differs from the script only in dot-stuffing: lines that begin with '.' were not doubled (RFC 5321 4.5.2)"))
        #expect(verdict.steps.last?.status == .mismatched)
    }

    @Test("conformance notes: bare LF, pipelining not advertised, no QUIT")
    func notes() throws {
        var player = try Self.player("""
            - greeting: 220 mx
              steps:
              - client: EHLO *
                match: wildcard
                reply: 250 mx
              - client: NOOP
                reply: 250 ok
              - client: QUIT
                reply: 221 bye
            """)
        _ = player.start()
        _ = player.receive(Array("EHLO me\nNOOP\r\n".utf8))
        player.clientClosed()
        #expect(player.verdict(session: 1, time: "", client: "").notes == [
            "a line ended in a bare LF instead of CRLF (RFC 5321 2.3.8)",
            "a command was sent before the reply to the previous one although PIPELINING was not advertised (RFC 2920)",
            "the client closed the connection without QUIT",
        ])
    }

    @Test("AUTH: the placeholder takes any credentials, and the verdict and mismatch replies never show them")
    func secrets() throws {
        var player = try Self.player("""
            - greeting: 220 mx
              steps:
              - client: AUTH PLAIN [REDACTED]
                reply: 235 ok
              - client: AUTH LOGIN
                reply: 334 VXNlcm5hbWU6
              - auth: '[REDACTED]'
                reply: 535 no
            """)
        _ = player.start()
        #expect(Self.show(player.receive(Array("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n".utf8))) == ["> 235 ok|"])
        let mismatch = Self.show(player.receive(Array("AUTH PLAIN c2VjcmV0AHNlY3JldA==\r\n".utf8)))
        #expect(mismatch == ["> 503 5.5.1 smtptape: expected 'AUTH LOGIN' (step 2), got 'AUTH PLAIN [REDACTED]'|"])
        let verdict = player.verdict(session: 1, time: "", client: "")
        #expect(!"\(verdict)".contains("AGFsaWNl") && !"\(verdict)".contains("c2VjcmV0"))
    }

    @Test("a message over the size limit is refused with 552, and the dialogue stays in step")
    func tooLarge() throws {
        var player = try Self.player("""
            - greeting: 220 mx
              steps:
              - client: DATA
                reply: 354 go
              - message: |
                  hi
                reply: 250 ok
              - client: QUIT
                reply: 221 bye
            """, .init(limits: .init(messageSize: 8)))
        _ = player.start()
        let actions = Self.show(player.receive(Array("DATA\r\n0123456789\r\n.\r\nQUIT\r\n".utf8)))
        #expect(actions == ["> 354 go|", "> 552 5.3.4 smtptape: message size exceeds the limit|", "> 221 bye|", "close"])
    }

    @Test("a command line the script holds is never too long for it: limits fit the scenario, and its transcript plays it")
    func longScriptedLine() throws {
        let long = "NOOP " + String(repeating: "x", count: 5000)
        let session = try Self.session("- greeting: 220 mx\n  steps:\n  - client: \(long)\n    reply: 250 ok\n")
        let limits = SMTPServerDialogue.Limits().fitting([session])
        #expect(limits.commandLine >= long.utf8.count + 2 && limits.messageSize == SMTPServerDialogue.Limits().messageSize)
        let replies = ScenarioPlayback.writes(session).filter { $0.side == .server }.map { String(decoding: $0.bytes, as: UTF8.self) }
        #expect(replies == ["220 mx\r\n", "250 ok\r\n"])
        var player = try SessionPlayer(session: session, scenarioName: "t", options: .init(limits: limits))
        _ = player.start()
        #expect(Self.show(player.receive(Array((long + "\r\n").utf8))) == ["> 250 ok|"])
    }
}
