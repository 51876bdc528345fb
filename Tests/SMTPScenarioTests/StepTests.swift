import SMTPCore
@testable import SMTPScenario
import SMTPTranscript
import Testing

/// The step model's keys for timing, faults and message matches: read, written canonically,
/// and what they mean.
@Suite struct StepFormatTests {
    /// Every new key in one file, written as smtptape writes it.
    static let canonical = """
        version: 1
        name: new keys
        sessions:
        - greeting: 220 mx.example.com ESMTP
          greeting-delay: 2
          recorded-greeting-delay: 0.004
          steps:
          - client: EHLO client.example.com
            match: wildcard
            pattern: EHLO *
            reply: 250 mx.example.com
            delay: 1.5
            recorded-delay: 0.25
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: Invoice 7

              Hi.
            match: regex
            pattern: '(?s)Subject: Invoice [0-9]+\\n.*'
            reply: 250 2.0.0 Ok
            recorded-delay: 0.125
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: x
            match: any
            reply: 250 2.0.0 Ok
          - message: |
              Subject: y
            match: wildcard
            pattern: '*y*'
            via: BDAT
            reply: 250 2.0.0 Ok
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: z
            match: exact
            fault: stall
          end: client-close
        - greeting: 220 mx.example.com ESMTP
          steps:
          - reply: 421 4.4.2 Timeout
            recorded-delay: 300
            fault: partial
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: MAIL FROM:<a@example.com>
            delay: 3
            fault: reset

        """

    @Test func newKeysReadAndWriteCanonically() throws {
        let result = ScenarioReader.parse(Self.canonical, file: "new-keys.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let scenario = try #require(result.scenario)
        #expect(ScenarioWriter.yaml(scenario) == Self.canonical)

        let first = scenario.sessions[0]
        #expect(first.greetingDelay == 2)
        #expect(first.recordedGreetingDelay == 0.004)
        #expect(first.steps[0].delay == 1.5)
        #expect(first.steps[0].recordedDelay == 0.25)
        #expect(first.steps[0].clientLine == Scenario.ClientLine("EHLO client.example.com", match: .wildcard, pattern: "EHLO *"))
        #expect(first.steps[2].message?.match == .regex)
        #expect(first.steps[2].message?.pattern == "(?s)Subject: Invoice [0-9]+\\n.*")
        #expect(first.steps[2].message?.content == Array("Subject: Invoice 7\r\n\r\nHi.\r\n".utf8))
        #expect(first.steps[4].message?.match == .any)
        #expect(first.steps[5].message == Scenario.Message(text: "Subject: y\n", via: .bdat, match: .wildcard, pattern: "*y*"))
        #expect(first.steps[7].fault == .stall)
        #expect(first.steps[7].reply == nil)
        #expect(first.steps[7].message?.match == .exact)
        #expect(first.end == .clientClose)
        #expect(scenario.sessions[1].steps[0] == .unsolicited(reply: "421 4.4.2 Timeout", recordedDelay: 300, fault: .partial))
        #expect(scenario.sessions[2].steps[0] == .command("MAIL FROM:<a@example.com>", reply: nil, delay: 3, fault: .reset))
        #expect(scenario.sessions[2].end == .serverClose)
    }

    /// `compare: exact`, the spelling before messages took `match`, is still read; `format`
    /// rewrites it as `match: exact`.
    @Test func compareExactIsReadAsMatchExact() throws {
        let old = """
            version: 1
            name: old spelling
            sessions:
            - greeting: 220 hi
              steps:
              - client: DATA
                reply: 354 go ahead
              - message: |
                  Subject: x
                compare: exact
                reply: 250 ok

            """
        let scenario = try #require(ScenarioReader.parse(old, file: "old.yaml").scenario)
        #expect(scenario.sessions[0].steps[1].message?.match == .exact)
        let written = ScenarioWriter.yaml(scenario)
        #expect(written == old.replacingOccurrences(of: "compare: exact", with: "match: exact"))
        #expect(ScenarioReader.parse(written, file: "new.yaml").scenario == scenario)
    }

    /// Each fault: whether a reply goes with it, and how the session ends when `end` is left out.
    @Test(arguments: [
        (Scenario.Fault.drop, false), (.partial, true), (.stall, false), (.reset, false),
    ])
    func faults(fault: Scenario.Fault, sendsReply: Bool) throws {
        #expect(fault.sendsReply == sendsReply)
        let step = Scenario.Step.command("NOOP", reply: sendsReply ? "250 ok" : nil, fault: fault)
        let session = Scenario.Session(greeting: "220 hi", steps: [step])
        #expect(session.end == .serverClose)
        #expect(step.endsSession)
        let yaml = ScenarioWriter.yaml(Scenario(name: "f", sessions: [session]))
        #expect(yaml.contains("    fault: \(fault.rawValue)\n"))
        #expect(yaml.contains("reply:") == sendsReply)
        let result = ScenarioReader.parse(yaml, file: "f.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        #expect(result.scenario?.sessions[0].steps[0] == step)
    }

    @Test func aStepAfterAStallIsAProblemAndSoIsAQuitEnd() {
        let yaml = """
            version: 1
            name: s
            sessions:
            - greeting: 220 hi
              steps:
              - client: NOOP
                fault: stall
              - client: QUIT
                reply: 221 bye

            """
        let result = ScenarioReader.parse(yaml, file: "s.yaml")
        #expect(result.diagnostics.map { "\($0.line):\($0.column)" } == ["8:5"])
    }

    @Test func constructorsBuildTheKindTheyName() {
        #expect(Scenario.Step.command("MAIL FROM:<a@b>", reply: "250 OK").kind
            == .command(Scenario.ClientLine(bytes: Array("MAIL FROM:<a@b>\r\n".utf8))))
        #expect(Scenario.Step.command("mail FROM:<a@b>", reply: "250 OK").verb == .mail)
        #expect(Scenario.Step.auth("[REDACTED]", reply: "235 ok").verb == nil)
        #expect(Scenario.Step.auth("[REDACTED]", reply: "235 ok").clientLine?.content == Array("[REDACTED]".utf8))
        #expect(Scenario.Step.message("a\nb\r\n", reply: "250 ok").message?.content == Array("a\r\nb\r\n".utf8))
        #expect(Scenario.Step.message("a\n", reply: "250 ok").clientLine == nil)
        #expect(Scenario.Step.unsolicited(reply: "421 bye").message == nil)
        #expect(Scenario.Step.command("QUIT", reply: "221 bye").endsSession)
        #expect(!Scenario.Step.command("QUIT", reply: nil, fault: nil).endsSession)
    }
}

/// Expectations prepared once per session: what each kind of step accepts.
@Suite struct StepMatcherTests {
    static let invoice = Array("Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nSubject: Invoice 7\r\n\r\nHi Bob.\r\n".utf8)
    static let resent = Array("Date: Tue, 02 Jan 2024 08:00:00 +0100\r\nSubject: Invoice 7\r\n\r\nHi Bob.\r\n".utf8)
    static let other = Array("Date: Tue, 02 Jan 2024 08:00:00 +0100\r\nSubject: Receipt\r\n\r\nHi Bob.\r\n".utf8)

    static func matcher(_ match: Scenario.MessageMatch, pattern: String? = nil) throws -> StepMatcher {
        try StepMatcher(Scenario.Step(kind: .message(Scenario.Message(content: invoice, match: match, pattern: pattern)), reply: "250 ok"))
    }

    @Test(arguments: [
        (Scenario.MessageMatch.normalized, nil, [true, true, false]),
        (.exact, nil, [true, false, false]),
        (.any, nil, [true, true, true]),
        (.wildcard, "*\nSubject: Invoice ?\n*", [true, true, false]),
        (.wildcard, nil, [true, false, false]),
        (.regex, "(?s).*^Subject: Invoice [0-9]+$.*", [false, false, false]),  // `^`/`$` need (?m)
        (.regex, "(?sm).*^Subject: Invoice [0-9]+$.*", [true, true, false]),
        (.regex, "Date: [^\n]*\nSubject: (Invoice|Receipt).*\n\nHi Bob\\.\n", [true, true, true]),
    ] as [(Scenario.MessageMatch, String?, [Bool])])
    func messages(match: Scenario.MessageMatch, pattern: String?, accepted: [Bool]) throws {
        let matcher = try Self.matcher(match, pattern: pattern)
        #expect([Self.invoice, Self.resent, Self.other].map(matcher.accepts(message:)) == accepted)
        #expect(!matcher.accepts(line: Array("DATA\r\n".utf8)))
    }

    @Test func aStepTakesOnlyWhatItsKindExpects() throws {
        let command = try StepMatcher(.command("NOOP", match: .any, reply: "250 ok"))
        #expect(command.accepts(line: Array("anything\r\n".utf8)))
        #expect(!command.accepts(message: []))
        let unsolicited = try StepMatcher(.unsolicited(reply: "421 bye"))
        #expect(!unsolicited.accepts(line: Array("NOOP\r\n".utf8)))
        #expect(!unsolicited.accepts(message: []))
    }

    /// The verb of a command is compared without regard to case; an AUTH response is base64,
    /// where case matters.
    @Test func authResponsesAreCaseSensitive() throws {
        let auth = try StepMatcher(.auth("dGVzdA==", reply: "235 ok"))
        #expect(auth.accepts(line: Array("dGVzdA==\r\n".utf8)))
        #expect(!auth.accepts(line: Array("DGVZDA==\r\n".utf8)))
        let placeholder = try StepMatcher(.auth("[REDACTED]", reply: "235 ok"))
        #expect(placeholder.accepts(line: Array("anything==\r\n".utf8)))
        #expect(!placeholder.accepts(line: Array("\r\n".utf8)))
        let command = try StepMatcher(.command("VRFY bob", reply: "252 ok"))
        #expect(command.accepts(line: Array("vrfy bob\r\n".utf8)))
        #expect(!command.accepts(line: Array("vrfy BOB\r\n".utf8)))
    }

    @Test func aCompiledSessionNamesTheStepWhosePatternDoesNotCompile() throws {
        let session = Scenario.Session(greeting: "220 hi", steps: [
            .command("EHLO x", match: .wildcard, pattern: "EHLO *", reply: "250 ok"),
            .command("MAIL FROM:<(.*", match: .regex, reply: "250 ok"),
        ])
        #expect(throws: ScenarioPatternError.self) { try CompiledSession(session) }
        do {
            _ = try Scenario(name: "x", sessions: [Scenario.Session(greeting: "220 hi"), session]).compiledSessions()
            Issue.record("a bad pattern compiled")
        } catch {
            #expect(error.session == 1)
            #expect(error.step == 1)
            #expect(error.pattern == "MAIL FROM:<(.*")
            #expect(error.description.hasPrefix("session 2 step 2 invalid regular expression 'MAIL FROM:<(.*'"))
        }
        let good = try CompiledSession(Scenario.Session(greeting: "220 hi", steps: [
            .command("MAIL FROM:<a@example.com>", match: .regex, pattern: "MAIL FROM:<[a-z]+@example\\.com>", reply: "250 ok"),
        ]))
        #expect(good.matchers.count == 1)
        #expect(good.accepts(line: Array("MAIL FROM:<bob@example.com>\r\n".utf8), step: 0))
        #expect(!good.accepts(line: Array("MAIL FROM:<bob@example.org>\r\n".utf8), step: 0))
        #expect(!good.accepts(message: [], step: 0))
    }
}

/// Scenarios rendered as transcripts: when lines are shown, and why sessions end.
@Suite struct PlaybackTests {
    @Test func linesComeAtDelayPlusRecordedDelay() {
        let session = Scenario.Session(greeting: "220 hi", greetingDelay: 1, recordedGreetingDelay: 0.5, steps: [
            .command("NOOP", reply: "250 ok", delay: 2, recordedDelay: 0.25),
            .command("QUIT", reply: "221 bye", recordedDelay: 0.125),
        ])
        #expect(ScenarioPlayback.writes(session).map(\.time) == [1.5, 1.5, 3.75, 3.75, 3.875])
    }

    @Test(arguments: [
        (Scenario.Fault.drop, Scenario.Ending.serverClose, SessionEndReason.closed(by: .server)),
        (.partial, .serverClose, .closed(by: .server)),
        (.reset, .serverClose, .reset(by: .server)),
        (.stall, .serverClose, .closed(by: .server)),
        (.stall, .clientClose, .closed(by: .client)),
    ] as [(Scenario.Fault, Scenario.Ending, SessionEndReason)])
    func faultsEndSessions(fault: Scenario.Fault, end: Scenario.Ending, reason: SessionEndReason) {
        let step = Scenario.Step.message("Subject: x\n", reply: fault.sendsReply ? "250 ok" : nil, fault: fault)
        let session = Scenario.Session(greeting: "220 hi", steps: [.command("DATA", reply: "354 go"), step], end: end)
        #expect(ScenarioPlayback.endReason(session) == reason)
        let writes = ScenarioPlayback.writes(session)
        // A drop or a reset comes before the `.` line; after a stall the server says nothing.
        let message = writes[3].bytes
        #expect(message == Array((fault == .drop || fault == .reset ? "Subject: x\r\n" : "Subject: x\r\n.\r\n").utf8))
        #expect(writes.count == (fault == .partial ? 5 : 4))
    }

    @Test func aResetIsSaidInTheTranscript() throws {
        let scenario = Scenario(name: "reset", sessions: [Scenario.Session(greeting: "220 hi", steps: [
            .command("MAIL FROM:<a@example.com>", reply: nil, fault: .reset),
        ])])
        let text = try Repository.render { output in
            ScenarioPlayback.render(scenario, source: "reset.yaml", firstSessionID: 1, into: TextTranscriptRenderer(output: output, data: .full))
        }
        #expect(text.contains("C: MAIL FROM:<a@example.com>"))
        #expect(text.contains("-- connection reset by the server"))
    }

    /// A scenario played back and recorded again: waits come back as recorded think time, and
    /// a reset instead of a reply as `fault: reset`.
    @Test func playedAndRecordedAgain() throws {
        let played = Scenario(name: "played", sessions: [Scenario.Session(greeting: "220 hi", greetingDelay: 0.25, steps: [
            .command("EHLO x", reply: "250 hi", delay: 1.5),
            .command("MAIL FROM:<a@example.com>", reply: "250 ok", recordedDelay: 0.5),
            .command("RCPT TO:<b@example.com>", reply: nil, fault: .reset),
        ])])
        var recorded: [Scenario] = []
        let recorder = ScenarioRecorder()
        recorder.onScenario = { _, scenario in recorded.append(scenario) }
        ScenarioPlayback.render(played, source: "played.yaml", firstSessionID: 1, into: recorder)
        let session = try #require(recorded.first?.sessions.first)
        #expect(session.greetingDelay == nil)
        #expect(session.recordedGreetingDelay == 0.25)
        #expect(session.steps.map(\.delay) == [nil, nil, nil])
        #expect(session.steps.map(\.recordedDelay) == [1.5, 0.5, nil])
        #expect(session.steps.last?.fault == .reset)
        #expect(session.end == .serverClose)
        let yaml = ScenarioWriter.yaml(try #require(recorded.first))
        #expect(yaml.contains("  recorded-greeting-delay: 0.25\n"))
        #expect(yaml.contains("    recorded-delay: 1.5\n"))
        #expect(!yaml.contains(" delay:"))
        #expect(ScenarioReader.parse(yaml, file: "recorded.yaml").diagnostics.isEmpty)
    }
}
