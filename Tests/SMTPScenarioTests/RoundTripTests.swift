import Foundation
import SMTPCapture
import SMTPCore
@testable import SMTPScenario
import SMTPTranscript
import Testing

/// Canonical form: reading then writing gives the same bytes; writing then reading an equal value.
@Suite struct RoundTripTests {
    @Test func scenariosFolderHasTheExamples() {
        let names = Repository.scenarioFiles.map { URL(fileURLWithPath: $0).lastPathComponent }
        for example in ["recipient-rejected", "mailbox-full", "greylisting", "server-shutting-down", "slow-server",
                        "disconnect-during-data", "starttls-required", "auth-failure", "message-too-large", "unresponsive-server",
                        "upstream-failure"] {
            #expect(names.contains(example + ".yaml"))
        }
        #expect(Repository.files(in: Repository.scenarios.appendingPathComponent("recorded"), ending: ".yaml").count == Repository.captureFiles.count)
    }

    @Test(arguments: Repository.scenarioFiles)
    func readingThenWritingGivesTheSameBytes(file: String) throws {
        let text = try String(contentsOfFile: file, encoding: .utf8)
        let result = ScenarioReader.read(file: file)
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let scenario = try #require(result.scenario)
        let written = ScenarioWriter.yaml(scenario)
        #expect(written == text)
        #expect(ScenarioReader.parse(written, file: file).scenario == scenario)
    }

    @Test(arguments: Repository.captureFiles)
    func scenariosExtractedFromCapturesRoundTrip(capture: String) throws {
        let scenarios = Repository.extract(capture)
        #expect(scenarios.count == 1)
        for scenario in scenarios {
            let written = ScenarioWriter.yaml(scenario)
            let read = try #require(ScenarioReader.parse(written, file: "extracted").scenario)
            #expect(read == scenario)
            #expect(ScenarioWriter.yaml(read) == written)
        }
    }

    /// The committed recorded examples are what `extract` makes from the committed captures today.
    @Test(arguments: Repository.captureFiles)
    func recordedExamplesAreCurrent(capture: String) throws {
        let scenario = try #require(Repository.extract(capture).first)
        let stem = URL(fileURLWithPath: capture).deletingPathExtension().lastPathComponent
        let file = try #require(Repository.files(in: Repository.scenarios.appendingPathComponent("recorded"), ending: ".yaml")
            .first { URL(fileURLWithPath: $0).lastPathComponent.hasPrefix(stem + "-session-") })
        var committed = try #require(ScenarioReader.read(file: file).scenario)
        // The session number depends on the order captures were extracted in.
        committed.name = scenario.name
        committed.origin?.session = scenario.origin?.session
        committed.description = scenario.description
        #expect(committed == scenario)
    }

    /// Nothing is lost between a capture and its scenario: both transcripts show the same
    /// command lines, reply lines and message data.
    @Test(arguments: Repository.captureFiles)
    func captureAndScenarioTranscriptsAgree(capture: String) throws {
        let fromCapture = try Repository.render { output in
            _ = SMTPExtractor(options: ExtractionOptions(keys: Repository.keys(for: capture)), observer: TextTranscriptRenderer(output: output, data: .full)).read(file: capture)
        }
        let scenario = try #require(Repository.extract(capture).first)
        let fromScenario = try Repository.render { output in
            ScenarioPlayback.render(scenario, source: "scenario", firstSessionID: 1, into: TextTranscriptRenderer(output: output, data: .full))
        }
        let capturedLines = Self.dialogueLines(fromCapture)
        var scenarioLines = Self.dialogueLines(fromScenario)
        if scenario.sessions[0].incomplete?.contains("stand-in 220 greeting") == true {
            // Nothing was readable (implicit TLS): the scenario says it uses a stand-in greeting.
            #expect(scenarioLines.first == "S: 220 smtptape: greeting not captured")
            scenarioLines.removeFirst()
        }
        #expect(!capturedLines.isEmpty || capture.contains("smtps"))
        // Pipelined commands come before their replies in a capture and step by step in a
        // scenario: compare what the client sent, what the server answered and the message data.
        for tag in ["C: ", "S: ", "D: "] {
            #expect(scenarioLines.filter { $0.hasPrefix(tag) } == capturedLines.filter { $0.hasPrefix(tag) })
        }
    }

    /// The `C:`, `S:` and `D:` lines of a transcript, without their times.
    static func dialogueLines(_ transcript: String) -> [String] {
        transcript.split(separator: "\n").compactMap { line in
            let trimmed = line.drop { $0 == " " || $0 == "+" || $0 == "." || $0.isNumber }
            return ["C: ", "S: ", "D: "].contains { trimmed.hasPrefix($0) } ? String(trimmed) : nil
        }
    }
}

/// Generated scenarios, with the awkward bytes real traffic carries, survive the round trip.
@Suite struct GeneratedScenarioTests {
    struct Generator: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let pieces: [[UInt8]] = [
        Array("Subject: hello\r\n".utf8), Array(".leading dot\r\n".utf8), Array("..two dots\r\n".utf8), Array(".\r\n".utf8),
        Array("lone\rCR\r\n".utf8), Array("lone LF\n".utf8), [0x00, 0x0D, 0x0A], [0xFF, 0xFE, 0x80, 0x0D, 0x0A],
        Array(repeating: 0x41, count: 5000) + [0x0D, 0x0A], Array("Grüße ✓\r\n".utf8), Array("\r\n".utf8), Array("tab\there\r\n".utf8),
        Array("  leading spaces\r\n".utf8), Array("trailing spaces  \r\n".utf8), Array("# not a comment\r\n".utf8), Array("key: value\r\n".utf8),
        Array("'quoted'\r\n".utf8), Array("no line ending".utf8), [0xC2, 0x9B, 0x0D, 0x0A],
    ]

    static let lines: [String] = ["MAIL FROM:<a@b>", "RCPT TO:<\"odd: name\"@example.com>", "NOOP #", "XFOO - : ]", "yes", "1.0", "null", "- dash", "@at", "`tick", "VRFY 'x'"]
    static let replies: [String] = ["250 OK", "250-a\n250 b", "550 5.1.1 <x>: no", "220", "250-x\n250-: y\n250 z"]
    static let greetings: [String] = ["220 hi", "220", "220-x\n220-: y\n220 z", "421 4.3.2 closing"]

    /// A random scenario with awkward values everywhere the format allows them, whose dialogue
    /// still makes sense (what `check` accepts): messages after DATA's 354, AUTH responses after
    /// 334 challenges, `end` agreeing with the last step.
    static func random(_ rng: inout Generator) -> Scenario {
        func pick<T>(_ items: [T]) -> T { items[Int(rng.next() % UInt64(items.count))] }
        let linePieces = pieces.filter { $0.last == 0x0A && $0.filter { $0 == 0x0A }.count == 1 }
        var sessions: [Scenario.Session] = []
        for _ in 0..<(1 + Int(rng.next() % 3)) {
            var steps: [Scenario.Step] = []
            let greeting = pick(greetings)
            if !greeting.hasPrefix("421") {
                for _ in 0..<Int(rng.next() % 5) {
                    switch rng.next() % 5 {
                    case 0:
                        var message: [UInt8] = []
                        for _ in 0..<Int(rng.next() % 6) { message += pick(pieces) }
                        let match = pick(Scenario.MessageMatch.allCases)
                        // A pattern the content meets (check holds a recorded message to its own pattern).
                        let pattern: String? = rng.next() % 2 == 0 ? nil : match == .wildcard ? pick(message.isEmpty ? ["*"] : ["*", "*?*"]) : match == .regex ? "(?s).*" : nil
                        if rng.next() % 3 == 0 {
                            steps.append(Scenario.Step(kind: .message(Scenario.Message(content: message, via: .bdat, chunks: rng.next() % 2 == 0 ? [] : [message.count],
                                                                                       match: match, pattern: pattern)),
                                                       reply: Scenario.Reply(pick(replies)), recordedDelay: rng.next() % 2 == 0 ? nil : 0.125))
                        } else {
                            steps.append(.command("DATA", reply: "354 End data with <CR><LF>.<CR><LF>"))
                            steps.append(Scenario.Step(kind: .message(Scenario.Message(content: message, match: match, pattern: pattern)),
                                                       reply: Scenario.Reply(pick(replies))))
                        }
                    case 1:
                        steps.append(.command("AUTH LOGIN", reply: "334 VXNlcm5hbWU6"))
                        steps.append(.auth(pick(["[REDACTED]", "dGVzdA=="]), reply: "334 UGFzc3dvcmQ6", delay: 0.25))
                        steps.append(.auth(pick(["[REDACTED]", "*", "dGVzdA=="]), reply: "235 2.7.0 ok"))
                    case 2:
                        // Raw bytes that are not a clean line: kept as base64.
                        steps.append(Scenario.Step(kind: .command(Scenario.ClientLine(bytes: pick(linePieces))), reply: Scenario.Reply(bytes: pick(linePieces))))
                    default:
                        let match = pick(Scenario.Match.allCases)
                        steps.append(.command(pick(lines), match: match,
                                              pattern: match == .wildcard ? pick(["*", "*?*"]) : match == .regex ? "^.*$" : nil,
                                              reply: Scenario.Reply(pick(replies)), delay: rng.next() % 2 == 0 ? nil : Double(rng.next() % 5000) / 1000,
                                              note: rng.next() % 4 == 0 ? "a note: with\nlines" : nil))
                        steps[steps.count - 1].recordedDelay = rng.next() % 3 == 0 ? Double(rng.next() % 5000) / 1000 : nil
                    }
                }
                switch rng.next() % 4 {
                case 0, 1: steps.append(.command("QUIT", reply: "221 2.0.0 Bye"))
                case 2: steps.append(.command("NOOP", reply: nil, fault: pick([.drop, .stall, .reset])))
                default: break
                }
            }
            // Replies the recording proxy sent in the server's place.
            for index in steps.indices where steps[index].reply != nil && rng.next() % 4 == 0 { steps[index].replyBy = .proxy }
            let quits = steps.last?.verb == .quit
            let faulted = steps.last?.fault != nil
            sessions.append(Scenario.Session(name: rng.next() % 2 == 0 ? nil : "s", implicitTLS: rng.next() % 5 == 0,
                                             greeting: Scenario.Reply(greeting), greetingBy: rng.next() % 4 == 0 ? .proxy : .server, greetingDelay: rng.next() % 3 == 0 ? 1.5 : nil,
                                             recordedGreetingDelay: rng.next() % 3 == 0 ? 0.004 : nil,
                                             steps: steps, end: quits ? .quit : faulted ? .serverClose : pick([.clientClose, .serverClose])))
        }
        return Scenario(name: pick(["generated", "yes", "name: with colon", "🙂"]), description: rng.next() % 2 == 0 ? nil : "multi\nline\n",
                        tags: rng.next() % 2 == 0 ? [] : ["a", "b c", "true"], sessions: sessions)
    }

    @Test(arguments: 1...20 as ClosedRange<UInt64>)
    func generatedScenariosRoundTrip(seed: UInt64) throws {
        var rng = Generator(state: seed)
        for _ in 0..<25 {
            let scenario = Self.random(&rng)
            let written = ScenarioWriter.yaml(scenario)
            let result = ScenarioReader.parse(written, file: "generated")
            #expect(result.diagnostics.isEmpty, "\(result.diagnostics)\n\(written)")
            let read = try #require(result.scenario)
            #expect(read == scenario)
            #expect(ScenarioWriter.yaml(read) == written)
        }
    }

    @Test func awkwardMessagesAreKeptExactly() throws {
        for piece in Self.pieces {
            let scenario = Scenario(name: "m", sessions: [Scenario.Session(greeting: "220 x", steps: [
                .command("DATA", reply: "354 go ahead"),
                Scenario.Step(kind: .message(Scenario.Message(content: piece + piece)), reply: "250 ok"),
            ])])
            let read = try #require(ScenarioReader.parse(ScenarioWriter.yaml(scenario), file: "m").scenario)
            #expect(read.sessions[0].steps[1].message?.content == piece + piece)
        }
    }

    /// C1 controls (U+0080 to U+009F) are control characters: lines and messages holding one
    /// are written as base64, so that none is ever in the file, and read back the same.
    @Test(arguments: [0x80, 0x85, 0x9B, 0x9F] as [UInt8])
    func c1ControlsAreWrittenAsBase64(second: UInt8) throws {
        let c1: [UInt8] = [0xC2, second]
        let scenario = Scenario(name: "c1", sessions: [Scenario.Session(greeting: "220 x", steps: [
            Scenario.Step(kind: .command(Scenario.ClientLine(bytes: Array("NOOP ".utf8) + c1 + [0x0D, 0x0A])),
                          reply: Scenario.Reply(bytes: Array("250 ok ".utf8) + c1 + [0x0D, 0x0A])),
            .command("DATA", reply: "354 go ahead"),
            Scenario.Step(kind: .message(Scenario.Message(content: Array("Subject: ".utf8) + c1 + [0x0D, 0x0A])), reply: "250 ok"),
        ])])
        let yaml = ScenarioWriter.yaml(scenario)
        #expect(yaml.contains("client-base64: ") && yaml.contains("reply-base64: ") && yaml.contains("message-base64: "), "\(yaml)")
        #expect(!Array(yaml.utf8).contains(0xC2))
        #expect(try #require(ScenarioReader.parse(yaml, file: "c1").scenario) == scenario)
    }

    @Test func textIsWrittenAsTextAndOddBytesAsBase64() {
        let scenario = Scenario(name: "t", sessions: [Scenario.Session(greeting: "220 x", steps: [
            .message("Subject: a\n\nbody\n", reply: "250 ok"),
            Scenario.Step(kind: .message(Scenario.Message(content: Array("bare\nLF\n".utf8))), reply: Scenario.Reply(bytes: Array("250OK\r\n".utf8))),
        ])])
        let yaml = ScenarioWriter.yaml(scenario)
        #expect(yaml.contains("  - message: |\n      Subject: a\n\n      body\n"))
        #expect(yaml.contains("message-base64: YmFyZQpMRgo="))
        #expect(yaml.contains("reply-base64: MjUwT0sNCg=="))  // breaks the reply grammar: kept as bytes
    }
}
