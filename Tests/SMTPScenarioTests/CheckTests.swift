import Foundation
import SMTPCore
import SMTPFiles
@testable import SMTPScenario
import Testing

/// `check` finds every defect in the broken fixtures, each at its line and column.
@Suite struct CheckTests {
    static let fixtures = Repository.files(in: Repository.broken, ending: ".yaml")

    @Test func thereAreFixtures() { #expect(Self.fixtures.count >= 12) }

    @Test(arguments: fixtures)
    func diagnosticsAreWhereTheDefectsAre(file: String) throws {
        let expected = try String(contentsOfFile: String(file.dropLast(5)) + ".expected", encoding: .utf8)
            .split(separator: "\n").filter { !$0.isEmpty }
        let result = ScenarioReader.read(file: file)
        #expect(result.scenario == nil)
        #expect(result.diagnostics.count == expected.count, "\(result.diagnostics.map(\.description))")
        for line in expected {
            let parts = line.split(separator: ":", maxSplits: 2)
            let position = (Int(parts[0])!, Int(parts[1])!)
            let substring = parts[2].dropFirst()
            #expect(result.diagnostics.contains { ($0.line, $0.column) == position && $0.message.contains(substring) },
                    "\(URL(fileURLWithPath: file).lastPathComponent): expected \(line); got \(result.diagnostics.map(\.description))")
        }
        for diagnostic in result.diagnostics { #expect(diagnostic.file == file) }
    }

    @Test func aHundredMegabyteFileIsRefusedWithoutReadingIt() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("huge-\(UUID().uuidString).yaml")
        defer { try? FileManager.default.removeItem(at: url) }
        FileManager.default.createFile(atPath: url.path, contents: nil)
        let handle = try FileHandle(forWritingTo: url)
        try handle.truncate(atOffset: 100 << 20)  // sparse: no 100 MB written
        try handle.close()
        let result = ScenarioReader.read(file: url.path)
        #expect(result.unreadable)
        #expect(result.diagnostics.map(\.description) == ["\(url.path):1:1: the file is 104857600 bytes; scenario files are limited to 16777216 bytes (16 MiB)"])
    }

    @Test(arguments: [
        ([0x00, 0x01, 0x02, 0xFF], "1:1", "NUL byte"),
        (Array("version: 1\nname: \u{00E9}".utf8) + [0xFF, 0xFE], "2:8", "not UTF-8"),
        (Array("\u{1}\u{2}binary".utf8), "1:1", "YAML"),
        (Array("- just\n- a list\n".utf8), "1:1", "must be a mapping"),
        (Array("".utf8), "1:1", "empty file"),
        (Array("version: 1\nname: x\nsessions: []\n".utf8), "3:11", "at least one session"),
        (Array("name: x\nsessions:\n- greeting: 220 x\n".utf8), "1:1", "missing 'version'"),
        (Array("version: one\n".utf8), "1:10", "whole number"),
        (Array("version: 0\nname: x\nsessions:\n- greeting: 220 x\n".utf8), "1:10", "'version' must be 1"),
    ] as [([UInt8], String, String)])
    func junkGetsAPositionedMessage(bytes: [UInt8], position: String, message: String) {
        let result = ScenarioReader.parse(bytes: bytes, file: "junk.yaml")
        #expect(result.scenario == nil)
        #expect(result.diagnostics.contains { "\($0.line):\($0.column)" == position && $0.message.contains(message) }, "\(result.diagnostics)")
    }

    @Test func aliasesThatExpandBeyondTheBudgetAreRefused() {
        // 64 KiB of text, aliased 40 x 40 times: 100 MiB once expanded, from a 70 KB file.
        var yaml = "version: 1\nname: bomb\nsessions:\n- greeting: 220 hi\n  steps: &steps\n  - message: &m \"" + String(repeating: "x", count: 65536) + "\"\n    reply: 250 ok\n"
        for _ in 0..<39 { yaml += "  - message: *m\n    reply: 250 ok\n" }
        for _ in 0..<39 { yaml += "- greeting: 220 hi\n  steps: *steps\n" }
        let start = ContinuousClock.now
        let result = ScenarioReader.parse(yaml, file: "bomb.yaml")
        #expect(result.scenario == nil)
        #expect(result.diagnostics.contains { $0.message.contains("expands to more than") })
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test func valuesThatWouldBreakPlaybackAreProblems() {
        let yaml = """
            version: 1
            name: x
            origin:
              start: 2026-01-01T00:00:.Z
            sessions:
            - greeting: 220 hi
              steps:
              - message: |
                  a
                via: BDAT
                chunks: [-3, 10]
                reply: 250 ok

            """
        let result = ScenarioReader.parse(yaml, file: "x.yaml")
        #expect(result.diagnostics.map { "\($0.line):\($0.column)" } == ["4:10", "11:13", "11:14"])
        #expect(Timestamp(rfc3339: "999999999-01-01T00:00:00Z") == nil)
        #expect(Timestamp(rfc3339: "2026-11-29T01:37:40.030560Z") == Timestamp(seconds: 1_795_916_260, nanoseconds: 30_560_000))
    }

    /// Hardening issue, item 4: some editors start UTF-8 files with a byte-order mark.
    @Test func aByteOrderMarkIsAccepted() throws {
        let text = "version: 1\nname: bom\nsessions:\n- greeting: 220 hi\n"
        let result = ScenarioReader.parse(bytes: [0xEF, 0xBB, 0xBF] + Array(text.utf8), file: "bom.yaml")
        #expect(result.diagnostics.isEmpty)
        #expect(result.scenario?.name == "bom")
    }

    @Test func didYouMean() {
        #expect(Walker.closest("replly", in: Walker.stepKeys) == "reply")
        #expect(Walker.closest("greting", in: Walker.sessionKeys) == "greeting")
        #expect(Walker.closest("colour", in: Walker.stepKeys) == nil)
    }
}

@Suite struct MatchingTests {
    static func matcher(_ line: String, _ match: Scenario.Match, pattern: String? = nil) throws -> StepMatcher {
        try StepMatcher(.command(line, match: match, pattern: pattern, reply: "250 ok"))
    }

    @Test(arguments: [
        ("MAIL FROM:<a@b>", Scenario.Match.exact, nil, "mail FROM:<a@b>", true),
        ("MAIL FROM:<a@b>", .exact, nil, "MAIL FROM:<A@b>", false),
        ("AUTH PLAIN [REDACTED]", .exact, nil, "AUTH PLAIN AGFsaWNlAHNlY3JldA==", true),
        ("AUTH PLAIN [REDACTED]", .exact, nil, "AUTH PLAIN ", false),
        ("[REDACTED]", .exact, nil, "d29uZGVybGFuZA==", true),
        ("EHLO client.example.com", .wildcard, "EHLO *", "ehlo other.example", true),
        ("EHLO *", .wildcard, nil, "HELO other.example", false),
        ("MAIL FROM:<a@b> SIZE=12", .wildcard, "MAIL FROM:<a@b> SIZE=*", "MAIL FROM:<a@b> SIZE=13000", true),
        ("MAIL FROM:<a@b> SIZE=12", .wildcard, "MAIL FROM:<a@b> SIZE=*", "MAIL FROM:<c@b> SIZE=13000", false),
        ("RCPT TO:<x>", .wildcard, "RCPT TO:<?>", "RCPT TO:<y>", true),
        ("RCPT TO:<x>", .wildcard, "RCPT TO:<?>", "RCPT TO:<yy>", false),
        ("RCPT TO:<x>", .wildcard, "RCPT TO:<?>", "RCPT TO:<>", false),
        ("MAIL FROM:<a@b>", .wildcard, "MAIL FROM:<?@b>", "MAIL FROM:<ab@b>", false),
        ("MAIL FROM:<a@b>", .wildcard, "MAIL FROM:<*?@b>", "MAIL FROM:<abc@b>", true),
        ("MAIL FROM:<a@example.com>", .regex, "MAIL FROM:<[a-z]+@example\\.com>", "MAIL FROM:<bob@example.com>", true),
        ("MAIL FROM:<a@example.com>", .regex, "MAIL FROM:<[a-z]+@example\\.com>", "MAIL FROM:<bob@example.com> SIZE=1", false),
        ("NOOP", .any, nil, "anything at all", true),
    ] as [(String, Scenario.Match, String?, String, Bool)])
    func clientLines(expected: String, match: Scenario.Match, pattern: String?, actual: String, accepted: Bool) throws {
        #expect(try Self.matcher(expected, match, pattern: pattern).accepts(line: Array(actual.utf8) + [13, 10]) == accepted)
    }

    @Test func messagesIgnoreDateMessageIDAndBoundaries() throws {
        let recorded = "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nMessage-ID: <1@a>\r\nContent-Type: multipart/mixed; boundary=\"==B1==\"\r\nSubject: s\r\n\r\n--==B1==\r\nhello\r\n--==B1==--\r\n"
        let again = "Date: Tue, 02 Jan 2024 08:00:00 +0100\r\nMessage-ID:\r\n <2@a.long.host>\r\nContent-Type: multipart/mixed; boundary=\"==B22==\"\r\nSubject: s\r\n\r\n--==B22==\r\nhello\r\n--==B22==--\r\n"
        let changed = again.replacingOccurrences(of: "hello", with: "HELLO")
        let step = try StepMatcher(Scenario.Step(kind: .message(Scenario.Message(content: Array(recorded.utf8))), reply: "250 ok"))
        #expect(step.accepts(message: Array(again.utf8)))
        #expect(!step.accepts(message: Array(changed.utf8)))
        let exact = try StepMatcher(Scenario.Step(kind: .message(Scenario.Message(content: Array(recorded.utf8), match: .exact)), reply: "250 ok"))
        #expect(!exact.accepts(message: Array(again.utf8)))
        #expect(exact.accepts(message: Array(recorded.utf8)))
    }

    /// The digest `extract` records is computed while the input is read, once: it must be the
    /// SHA-256 of every byte, however the reader consumed them.
    @Test(arguments: [
        ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        ("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq", "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"),
    ])
    func digestOfAnInput(input: String, digest: String) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(input.utf8).write(to: url)
        let source = try InputSource(path: url.path, hashing: true)
        _ = source.peek(2)
        var buffer = [UInt8](repeating: 0, count: 1)
        _ = buffer.withUnsafeMutableBytes { source.read(into: $0) }
        #expect(source.finishDigest() == digest)
    }

    @Test func digestOfAMillionAs() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("digest-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data(repeating: 0x61, count: 1_000_000).write(to: url)
        #expect(try InputSource(path: url.path, hashing: true).finishDigest() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
