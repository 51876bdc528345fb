import Foundation
import SMTPCore
import SMTPFiles
@testable import SMTPScenario
import SMTPTranscript
import Testing

/// `reply-by` and `greeting-by`: replies the recording proxy sent in the server's place.
@Suite struct ProxyReplyTests {
    static let canonical = """
        version: 1
        name: proxy replies
        sessions:
        - greeting: 421 4.4.0 proxy cannot reach the server
          greeting-by: proxy
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: DATA
            reply: 354 go ahead
          - message: |
              Subject: x
            reply: 451 4.4.1 proxy lost the server
            reply-by: proxy
            recorded-delay: 0.5
          - client: NOOP
            reply: 250 ok
          - reply: 421 4.4.2 server not answering
            reply-by: proxy
            delay: 30
        - greeting: 220 mx.example.com ESMTP
          steps:
          - client: NOOP
            reply: 250 ok
            reply-by: proxy
            fault: partial

        """

    @Test func readAndWrittenCanonically() throws {
        let result = ScenarioReader.parse(Self.canonical, file: "proxy.yaml")
        #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
        let scenario = try #require(result.scenario)
        #expect(ScenarioWriter.yaml(scenario) == Self.canonical)
        #expect(scenario.sessions[0].greetingBy == .proxy)
        #expect(scenario.sessions[0].end == .serverClose)
        #expect(scenario.sessions[1].greetingBy == .server)
        #expect(scenario.sessions[1].steps.map(\.replyBy) == [.server, .proxy, .server, .proxy])
        #expect(scenario.sessions[1].steps[3] == .unsolicited(reply: "421 4.4.2 server not answering", delay: 30).replying(by: .proxy))
        #expect(scenario.sessions[2].steps[0].replyBy == .proxy)
    }

    /// `server` is the default: read, and left out when written.
    @Test func serverIsTheDefaultAndNotWritten() throws {
        let yaml = "version: 1\nname: s\nsessions:\n- greeting: 220 hi\n  greeting-by: server\n  steps:\n  - client: NOOP\n    reply: 250 ok\n    reply-by: server\n"
        let scenario = try #require(ScenarioReader.parse(yaml, file: "s.yaml").scenario)
        #expect(scenario.sessions[0].greetingBy == .server)
        #expect(scenario.sessions[0].steps[0].replyBy == .server)
        #expect(ScenarioWriter.yaml(scenario) == "version: 1\nname: s\nsessions:\n- greeting: 220 hi\n  steps:\n  - client: NOOP\n    reply: 250 ok\n")
    }

    /// Replay plays a proxy's reply like any other.
    @Test func replayPlaysThemAlike() throws {
        let scenario = try #require(ScenarioReader.parse(Self.canonical, file: "proxy.yaml").scenario)
        var refused = try SessionPlayer(session: scenario.sessions[0], scenarioName: "p")
        #expect(refused.start() == [.send(Array("421 4.4.0 proxy cannot reach the server\r\n".utf8)), .close])
        var player = try SessionPlayer(session: scenario.sessions[1], scenarioName: "p")
        _ = player.start()
        #expect(player.receive(Array("DATA\r\n".utf8)) == [.send(Array("354 go ahead\r\n".utf8))])
        #expect(player.receive(Array("Subject: x\r\n.\r\n".utf8)) == [.send(Array("451 4.4.1 proxy lost the server\r\n".utf8))])
    }

    /// Transcripts of a scenario flag the replies the proxy sent, and only those.
    @Test func transcriptsFlagThem() throws {
        let scenario = try #require(ScenarioReader.parse(Self.canonical, file: "proxy.yaml").scenario)
        let text = try Repository.render { output in
            ScenarioPlayback.render(scenario, source: "proxy.yaml", firstSessionID: 1, into: TextTranscriptRenderer(output: output, data: .full))
        }
        let flagged = text.split(separator: "\n").filter { $0.contains("by_proxy]") }.map { line in
            String(line.drop { $0 == " " || $0 == "+" || $0 == "." || $0.isNumber })
        }
        #expect(flagged == [
            "S: 421 4.4.0 proxy cannot reach the server  [by_proxy]",
            "S: 451 4.4.1 proxy lost the server  [by_proxy]",
            "S: 421 4.4.2 server not answering  [unsolicited, by_proxy]",
            "S: 250 ok  [unterminated, by_proxy]",
        ], "\(text)")
        #expect(text.contains("S: 354 go ahead\n") && text.contains("S: 250 ok\n"))
    }
}

/// `message-file`: a message kept beside its scenario.
@Suite struct MessageFileTests {
    /// A fresh folder, removed after `body`.
    static func inFolder(_ body: (URL) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("message-file-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try body(folder)
    }

    static func yaml(_ name: String, extra: String = "") -> String {
        """
        version: 1
        name: beside
        sessions:
        - greeting: 220 hi
          steps:
          - client: DATA
            reply: 354 go ahead
          - message-file: \(name)
        \(extra)    reply: 250 ok

        """
    }

    /// Bytes no `message` text could hold: a bare LF, a NUL, 8-bit data, no final line ending.
    static let content: [UInt8] = Array("Subject: beside\r\n\r\n.leading dot\nbare LF\r\n".utf8) + [0, 0xFF, 0x80] + Array("no ending".utf8)

    @Test func readFromTheScenariosFolderAndWrittenBackByName() throws {
        try Self.inFolder { folder in
            try Data(Self.content).write(to: folder.appendingPathComponent("m.eml"))
            let yaml = Self.yaml("m.eml")
            try Data(yaml.utf8).write(to: folder.appendingPathComponent("s.yaml"))
            let result = ScenarioReader.read(file: folder.appendingPathComponent("s.yaml").path)
            #expect(result.diagnostics.isEmpty, "\(result.diagnostics)")
            let scenario = try #require(result.scenario)
            let message = try #require(scenario.sessions[0].steps[1].message)
            #expect(message.content == Self.content)
            #expect(message.file == "m.eml")
            // Written back as the name, not the content; read again, equal.
            let written = ScenarioWriter.yaml(scenario)
            #expect(written == yaml)
            #expect(ScenarioReader.parse(written, file: "again.yaml", baseFolder: folder.path).scenario == scenario)
            // The same text with the content inline differs only in where the content is.
            var inline = scenario
            inline.sessions[0].steps[1].kind = .message(Scenario.Message(content: Self.content))
            #expect(ScenarioWriter.yaml(inline).contains("message-base64: "))
        }
    }

    /// A file name relative to the current folder reads from the current folder.
    @Test func folderOfAPath() {
        #expect(FileBeside.folder(of: "s.yaml") == ".")
        #expect(FileBeside.folder(of: "a/b/s.yaml") == "a/b")
        #expect(FileBeside.folder(of: "/s.yaml") == "/")
        #expect(FileBeside.folder(of: "-") == nil)
    }

    /// Text parsed with no folder (or read from standard input) has nowhere to read a file from.
    @Test func withoutAFolderItIsAProblemAtTheKey() throws {
        let result = ScenarioReader.parse(Self.yaml("m.eml"), file: "text.yaml")
        #expect(result.scenario == nil)
        #expect(result.diagnostics.map(\.description) == ["text.yaml:8:5: 'message-file' names a file beside the scenario, and this scenario was read with no folder given to read 'm.eml' from"])
    }

    @Test(arguments: [
        ("../m.eml", "is a plain file name"), ("sub/m.eml", "is a plain file name"), (".m.eml", "is a plain file name"),
        ("m\\u00e9.eml", "is a plain file name"), ("''", "is a plain file name"),
        ("missing.eml", "no such file in"), ("link.eml", "is a symbolic link"), ("folder.eml", "is a folder"),
    ])
    func problemsArePositionedAtTheKey(name: String, problem: String) throws {
        try Self.inFolder { folder in
            try Data("Subject: x\r\n".utf8).write(to: folder.appendingPathComponent("m.eml"))
            try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("link.eml").path, withDestinationPath: "m.eml")
            try FileManager.default.createDirectory(at: folder.appendingPathComponent("folder.eml"), withIntermediateDirectories: false)
            let yaml = Self.yaml(name.hasPrefix("m\\") ? "\"\(name)\"" : name)
            let result = ScenarioReader.parse(yaml, file: "s.yaml", baseFolder: folder.path)
            #expect(result.scenario == nil)
            #expect(result.diagnostics.count == 1, "\(result.diagnostics)")
            #expect(result.diagnostics.first.map { "\($0.line):\($0.column)" } == "8:5")
            #expect(result.diagnostics.first?.message.contains(problem) == true, "\(result.diagnostics)")
        }
    }

    /// A file over the limit is refused from its size, without reading it.
    @Test func aFileOverOneGibibyteIsRefused() throws {
        try Self.inFolder { folder in
            let url = folder.appendingPathComponent("huge.eml")
            _ = FileManager.default.createFile(atPath: url.path, contents: nil)
            let handle = try FileHandle(forWritingTo: url)
            try handle.truncate(atOffset: UInt64(Scenario.messageFileLimit) + 1)  // sparse: nothing written
            try handle.close()
            let result = ScenarioReader.parse(Self.yaml("huge.eml"), file: "s.yaml", baseFolder: folder.path)
            #expect(result.diagnostics.map(\.description) == ["s.yaml:8:5: 'message-file' huge.eml is 1073741825 bytes, over the limit of 1073741824 bytes"])
        }
    }

    @Test func aFileThatGrowsPastTheLimitWhileReadIsRefused() throws {
        try Self.inFolder { folder in
            try Data(repeating: 0x41, count: 100).write(to: folder.appendingPathComponent("m.eml"))
            #expect(try FileBeside.read("m.eml", in: folder.path, limit: 100) == Array(repeating: 0x41, count: 100))
            #expect(throws: FileError.self) { try FileBeside.read("m.eml", in: folder.path, limit: 99) }
            try Data().write(to: folder.appendingPathComponent("empty.eml"))
            #expect(try FileBeside.read("empty.eml", in: folder.path, limit: 99) == [])
        }
    }

    /// The rest of a message step applies as to `message`: its own pattern, BDAT chunk sizes.
    @Test func theStepIsCheckedAsAnyMessageIs() throws {
        try Self.inFolder { folder in
            try Data("Subject: x\r\n".utf8).write(to: folder.appendingPathComponent("m.eml"))
            let yaml = Self.yaml("m.eml", extra: "    match: wildcard\n    pattern: 'Subject: y*'\n")
            let result = ScenarioReader.parse(yaml, file: "s.yaml", baseFolder: folder.path)
            #expect(result.diagnostics.map { "\($0.line):\($0.column): \($0.message)" } == ["10:14: the recorded message does not match its own pattern"])
        }
    }

    @Test func oneGibibyteIsTheLimit() {
        #expect(Scenario.messageFileLimit == 1 << 30)
        #expect(Walker.closest("mesage-file", in: Walker.stepKeys) == "message-file")
        #expect(Walker.closest("replyby", in: Walker.stepKeys) == "reply-by")
    }
}

/// ``Scenario/placingLargeMessages(baseName:threshold:)``: which messages go beside the scenario,
/// and their names.
@Suite struct MessagePlacementTests {
    static func scenario(_ sizes: [[Int]]) -> Scenario {
        Scenario(name: "p", sessions: sizes.map { session in
            Scenario.Session(greeting: "220 hi", steps: session.flatMap { size in
                [.command("DATA", reply: "354 go ahead"),
                 Scenario.Step(kind: .message(Scenario.Message(content: Array(repeating: 0x61, count: size) + [13, 10])), reply: "250 ok")]
            })
        })
    }

    @Test func messagesOverTheThresholdGoBesideNamedBySessionAndStep() throws {
        let scenario = Self.scenario([[10, 3000], [2999, 5000]])
        let (placed, files) = scenario.placingLargeMessages(baseName: "cap ture-session-3", threshold: 3001)
        #expect(files.map(\.name) == ["cap_ture-session-3-s1-step4.eml", "cap_ture-session-3-s2-step4.eml"])
        #expect(files.map(\.content.count) == [3002, 5002])
        #expect(placed.sessions.flatMap(\.steps).compactMap { $0.message?.file } == files.map(\.name))
        // Only the names changed.
        var unplaced = placed
        for session in unplaced.sessions.indices {
            for step in unplaced.sessions[session].steps.indices {
                if case .message(var message) = unplaced.sessions[session].steps[step].kind {
                    message.file = nil
                    unplaced.sessions[session].steps[step].kind = .message(message)
                }
            }
        }
        #expect(unplaced == scenario)
        for file in files { #expect(OutputFolder.isSafeName(file.name)) }
        // Placing again decides afresh: a file name on a small message is cleared.
        let again = placed.placingLargeMessages(baseName: "x", threshold: 1 << 20)
        #expect(again.files.isEmpty)
        #expect(again.scenario == scenario)
    }

    @Test func theDefaultThresholdIsOneMebibyte() {
        let scenario = Self.scenario([[(1 << 20) - 2, (1 << 20) - 1]])
        let (_, files) = scenario.placingLargeMessages(baseName: "s")
        #expect(files.map(\.name) == ["s-s1-step4.eml"])
    }

    /// Messages under the threshold that would together overflow the scenario file: the largest
    /// go beside it until the rest fits.
    @Test func smallMessagesThatAddUpAreMovedLargestFirst() throws {
        let scenario = Self.scenario([[4000, 9000, 6000, 100, 8000]])
        let limit = 12_000
        #expect(ScenarioWriter.yaml(scenario).utf8.count > limit)
        let (placed, files) = scenario.placingLargeMessages(baseName: "s", threshold: 10_000, sizeLimit: limit)
        #expect(files.map(\.name) == ["s-s1-step4.eml", "s-s1-step10.eml"])
        #expect(ScenarioWriter.yaml(placed).utf8.count <= limit)
    }
}

extension Scenario.Step {
    func replying(by source: Scenario.ReplySource) -> Scenario.Step {
        var step = self
        step.replyBy = source
        return step
    }
}
