import Foundation
import SMTPCore
@testable import SMTPFiles
import SMTPTranscript
import Testing

@Suite struct ByteWriterTests {
    static let samples: [[UInt8]] = [[], [0], [0xFF, 0xFE], Array("f".utf8), Array("fo".utf8), Array("foo".utf8), Array("foob".utf8),
                                     Array(0...255), Array(repeating: 0x2E, count: 1001)]

    @Test(arguments: samples)
    func base64MatchesFoundation(bytes: [UInt8]) {
        let writer = ByteWriter(capacity: 4)
        bytes.withUnsafeBytes { writer.appendBase64($0) }
        #expect(String(decoding: writer.bytes, as: UTF8.self) == Data(bytes).base64EncodedString())
    }

    @Test(arguments: [
        (Array("plain text".utf8), "plain text"),
        (Array("quote \" and \\ backslash".utf8), "quote \\\" and \\\\ backslash"),
        (Array("tab\tcr\rlf\n".utf8), "tab\\tcr\\rlf\\n"),
        ([0x00, 0x1F], "\\u0000\\u001f"),
        (Array("Grüße ✓".utf8), "Grüße ✓"),
        ([0x41, 0xFF, 0x42, 0xC3], "A\u{FFFD}B\u{FFFD}"),
        ([0xED, 0xA0, 0x80], "\u{FFFD}\u{FFFD}\u{FFFD}"),  // an encoded surrogate is not valid UTF-8
        ([0x80, 0x41, 0x7F], "\u{FFFD}A\u{7F}"),  // a lone continuation byte; DEL needs no escape
    ])
    func jsonEscaping(input: [UInt8], expected: String) throws {
        let writer = ByteWriter()
        input.withUnsafeBytes { writer.appendJSONEscaped($0) }
        let text = String(decoding: writer.bytes, as: UTF8.self)
        #expect(text == expected)
        // Byte for byte: decoding the output as UTF-8 would hide invalid bytes.
        #expect(Array(writer.bytes) == Array(expected.utf8))
        // And it is valid inside a JSON string.
        let decoded = try JSONSerialization.jsonObject(with: Data(("\"" + text + "\"").utf8), options: .fragmentsAllowed) as? String
        #expect(decoded != nil)
    }

    @Test(arguments: [0, 7, 10, 99, 1_000_000, -42, Int.max])
    func decimals(value: Int) {
        let writer = ByteWriter(capacity: 1)
        writer.appendDecimal(value)
        #expect(String(decoding: writer.bytes, as: UTF8.self) == String(value))
    }

    @Test func timestampsInJSONAreRFC3339WithMicroseconds() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("json-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        let descriptor = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        let output = ByteOutput(descriptor: descriptor)
        let writer = JSONTranscriptWriter(output: output)
        let times = [Timestamp(seconds: 1_700_000_000, nanoseconds: 123_456_789), Timestamp(seconds: 1_700_000_000, nanoseconds: 999_999),
                     Timestamp(seconds: 0, nanoseconds: 0), Timestamp(seconds: 951_782_400, nanoseconds: 1000)]
        for time in times { writer.gap(side: .client, bytes: 1, time: time) }
        output.flush()
        close(descriptor)
        let lines = try String(contentsOf: url, encoding: .utf8).split(separator: "\n")
        let stamps = try lines.map { try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])["time"] as? String }
        #expect(stamps == ["2023-11-14T22:13:20.123456Z", "2023-11-14T22:13:20.000999Z", "1970-01-01T00:00:00.000000Z", "2000-02-29T00:00:00.000001Z"])
    }
}

@Suite struct MessageFileWriterTests {
    @Test func namesComeFromNumbersOnlyAndIncompleteMessagesAreMarked() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("eml-\(UUID().uuidString)/a/b")
        defer { try? FileManager.default.removeItem(at: folder.deletingLastPathComponent().deletingLastPathComponent()) }
        let output = try OutputFolder(path: folder.path, replaceExisting: false)
        let writer = MessageFileWriter(folder: output)
        let info = SessionInfo(id: 7, client: "a", server: "b", start: Timestamp(nanoseconds: 0), source: "mail.pcap", handshakeSeen: true)
        let time = Timestamp(nanoseconds: 0)
        writer.sessionStarted(info)
        Array("Subject: x\r\n\r\n..dot\r\n".utf8).withUnsafeBytes {
            writer.messageData($0, message: 1, transfer: .data, atLineStart: true, time: time)
        }
        writer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: 1, transfer: .data, size: 20, complete: true, time: time)
        Array("partial".utf8).withUnsafeBytes { writer.messageData($0, message: 2, transfer: .bdat, atLineStart: false, time: time) }
        writer.messageEnd(UnsafeRawBufferPointer(start: nil, count: 0), message: 2, transfer: .bdat, size: 7, complete: false, time: time)
        #expect(writer.written == ["session-0007-message-01.eml", "session-0007-message-02.incomplete.eml"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { !$0.hasPrefix(".smtptape-staging-") }.isEmpty,
                "nothing is in place before the folder is committed")
        try output.commit()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted()
        #expect(names == ["session-0007-message-01.eml", "session-0007-message-02.incomplete.eml"])
        #expect(try Data(contentsOf: folder.appendingPathComponent(names[0])) == Data("Subject: x\r\n\r\n.dot\r\n".utf8))
        #expect(try Data(contentsOf: folder.appendingPathComponent(names[1])) == Data("partial".utf8))
    }

    @Test func aFileInTheWayIsAnError() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("not-a-folder-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: file) }
        try Data().write(to: file)
        #expect(throws: FileError.self) { try OutputFolder(path: file.path, replaceExisting: false) }
    }
}

@Suite struct OutputFolderTests {
    /// Runs `body` with an output folder in a fresh temporary directory, then removes it.
    func withFolder(_ body: (OutputFolder, URL) throws -> Void) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("out-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: url) }
        try body(try OutputFolder(path: url.path, replaceExisting: false), url)
    }

    @Test func onlyPlainNamesAreWritten() throws {
        try withFolder { folder, _ in
            for name in ["", ".hidden", "..", "a/b", "../up", "nul\u{0}"] {
                #expect(throws: FileError.self, "\(name)") { try folder.create(name) }
            }
            try folder.write(Array("x".utf8), to: "plain.eml")
            #expect(throws: FileError.self) { try folder.rename(staged: "plain.eml", to: ".plain.eml") }
        }
    }

    @Test func aNameIsWrittenOnceInARun() throws {
        try withFolder { folder, url in
            try folder.write(Array("first".utf8), to: "a.yaml")
            #expect(throws: FileError.self) { try folder.write(Array("second".utf8), to: "a.yaml") }
            try folder.write(Array("other".utf8), to: "b.yaml")
            #expect(throws: FileError.self) { try folder.rename(staged: "b.yaml", to: "a.yaml") }
            try folder.commit()
            #expect(try Data(contentsOf: url.appendingPathComponent("a.yaml")) == Data("first".utf8))
            #expect(try Data(contentsOf: url.appendingPathComponent("b.yaml")) == Data("other".utf8))
        }
    }

    @Test func safeNamesAreShortVisibleAndPlain() {
        #expect(OutputFolder.safeName(".hidden") == "_hidden")
        #expect(OutputFolder.safeName("..") == "_.")
        #expect(OutputFolder.safeName("a/b c\u{E9}") == "a_b_c_")
        #expect(OutputFolder.safeName("") == "capture")
        #expect(OutputFolder.safeName(String(repeating: "x", count: 300)) == String(repeating: "x", count: 100))
    }
}
