import Testing
@testable import SMTPCore

/// Messages with what makes dot-stuffing hard; shared with the dialogue tests.
struct SampleMessage: Sendable, CustomTestStringConvertible {
    let name: String
    let bytes: [UInt8]
    init(_ name: String, _ bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }
    init(_ name: String, _ text: String) { self.init(name, Array(text.utf8)) }
    var testDescription: String { name }

    /// What DATA delivers for this message: `DotStuffing.stuff` appends CRLF to a non-empty
    /// message that does not end with one.
    var delivered: [UInt8] {
        let endsWithCRLF = bytes.count >= 2 && bytes[bytes.count - 2] == 0x0D && bytes[bytes.count - 1] == 0x0A
        return bytes.isEmpty || endsWithCRLF ? bytes : bytes + [0x0D, 0x0A]
    }

    static let all: [SampleMessage] = [
        .init("empty", ""),
        .init("plain", "Subject: hi\r\n\r\nbody\r\n"),
        .init("no final CRLF", "Subject: hi\r\n\r\nbody"),
        .init("leading dot on the first line", ".hidden\r\nnext\r\n"),
        .init("leading dots on every line", ".a\r\n..b\r\n...c\r\n"),
        .init("a line of a single dot", "a\r\n.\r\nb\r\n"),
        .init("a single dot", "."),
        .init("a single dot line", ".\r\n"),
        .init("dot CR without LF", "a\r\n.\rb\r\n"),
        .init("lone CR", "a\rb\r\n"),
        .init("ends with lone CR", "a\r"),
        .init("CR CR LF", "a\r\r\n.b\r\r\n"),
        .init("lone LF", "a\nb\n"),
        .init("lone LF then dot", "a\n.\nb\r\n"),
        .init("lone LF then dot CRLF", "x\n.\r\ny\r\n"),
        .init("NUL bytes", "a\u{0}b\r\n\u{0}.\u{0}\r\n"),
        .init("non-UTF-8", [0xFF, 0xFE, 0x80, 0x0D, 0x0A, 0x2E, 0xC3, 0x0D, 0x0A, 0x2E, 0x2E, 0xC0]),
        .init("just CRLF", "\r\n"),
        .init("blank lines", "\r\n\r\n\r\n"),
        .init("very long line", Array(repeating: 0x78, count: 10_000) + [0x0D, 0x0A]),
        .init("very long line of dots", Array(repeating: 0x2E, count: 3_000) + [0x0D, 0x0A] + Array(repeating: 0x2E, count: 3_000)),
        .init("every byte value", Array(0...255) + Array((0...255).reversed())),
        .init("terminator-looking text", "CRLF.CRLF is \r\n.\r\n and \n.\n here\r\n..\r\n"),
    ]
}

@Suite("Dot-stuffing (RFC 5321 4.5.2)")
struct DotStuffingTests {
    struct UnstuffCase: Sendable, CustomTestStringConvertible {
        let wire: [UInt8]
        let atLineStart: Bool
        let message: [UInt8]
        let endsAtLineStart: Bool
        init(_ wire: String, atLineStart: Bool = true, _ message: String, endsAtLineStart: Bool) {
            self.wire = Array(wire.utf8)
            self.atLineStart = atLineStart
            self.message = Array(message.utf8)
            self.endsAtLineStart = endsAtLineStart
        }
        var testDescription: String { ByteString(wire).description + (atLineStart ? "" : " (mid-line)") }
    }

    static let unstuffCases: [UnstuffCase] = [
        .init("..hidden\r\n", ".hidden\r\n", endsAtLineStart: true),
        .init("..hidden\r\n", atLineStart: false, "..hidden\r\n", endsAtLineStart: true),
        .init("a\r\n..b\r\n...c\r\n", "a\r\n.b\r\n..c\r\n", endsAtLineStart: true),
        .init(".x", "x", endsAtLineStart: false),
        .init("x.\r\n.y", "x.\r\ny", endsAtLineStart: false),
        .init("a\n.b", "a\nb", endsAtLineStart: false),
        .init("a\r.b", "a\r.b", endsAtLineStart: false),
        .init("no dots\r\n", "no dots\r\n", endsAtLineStart: true),
        .init("", "", endsAtLineStart: true),
        .init("", atLineStart: false, "", endsAtLineStart: false),
        .init(".", "", endsAtLineStart: false),
        .init("..", ".", endsAtLineStart: false),
        .init(".\r\n", "\r\n", endsAtLineStart: true),
        .init("\r\n.", atLineStart: false, "\r\n", endsAtLineStart: false),
        .init("\n\n.\n", "\n\n\n", endsAtLineStart: true),
    ]

    @Test("unstuff removes one leading dot per line", arguments: unstuffCases)
    func unstuff(_ fixture: UnstuffCase) {
        #expect(DotStuffing.unstuff(fixture.wire, atLineStart: fixture.atLineStart) == fixture.message)
        var out: [UInt8] = [0x21]  // appends, does not replace
        let ends = fixture.wire.withUnsafeBytes { DotStuffing.unstuff($0, atLineStart: fixture.atLineStart, into: &out) }
        #expect(out == [0x21] + fixture.message)
        #expect(ends == fixture.endsAtLineStart)
    }

    static let stuffCases: [(String, String)] = [
        ("", ".\r\n"),
        ("a\r\n", "a\r\n.\r\n"),
        ("a", "a\r\n.\r\n"),
        (".a\r\n", "..a\r\n.\r\n"),
        ("a\r\n.\r\n", "a\r\n..\r\n.\r\n"),
        ("a\n.b", "a\n..b\r\n.\r\n"),
        ("a\r.b\r\n", "a\r.b\r\n.\r\n"),
        ("\r\n", "\r\n.\r\n"),
        (".", "..\r\n.\r\n"),
        ("a\r", "a\r\r\n.\r\n"),
    ]

    @Test("stuff doubles leading dots and appends the terminator", arguments: stuffCases)
    func stuff(_ message: String, _ wire: String) {
        #expect(DotStuffing.stuff(Array(message)) == Array(wire))
    }

    @Test("unstuff(stuff(m)) gives m back (plus the CRLF stuff adds)", arguments: SampleMessage.all)
    func roundTrip(_ sample: SampleMessage) {
        let wire = DotStuffing.stuff(sample.bytes)
        #expect(wire.suffix(3) == [0x2E, 0x0D, 0x0A])
        let content = Array(wire.dropLast(3))
        #expect(DotStuffing.unstuff(content) == sample.delivered)
    }

    @Test("no line of the stuffed content can be taken for the terminator", arguments: SampleMessage.all)
    func noEarlyTerminator(_ sample: SampleMessage) {
        let wire = DotStuffing.stuff(sample.bytes)
        let content = Array(wire.dropLast(3))
        // Every line (after LF, or at the start) that begins with a dot begins with two.
        var lineStart = true
        for (index, byte) in content.enumerated() {
            if lineStart, byte == 0x2E {
                #expect(index + 1 < content.count && content[index + 1] == 0x2E, "unstuffed dot at offset \(index)")
            }
            lineStart = byte == 0x0A
        }
        // The content ends a line, so the terminator starts one.
        #expect(content.isEmpty || content.last == 0x0A)
    }

    @Test("unstuffing in pieces, threading atLineStart, equals unstuffing at once", arguments: SampleMessage.all.filter { $0.bytes.count < 600 })
    func piecewise(_ sample: SampleMessage) {
        let wire = Array(DotStuffing.stuff(sample.bytes).dropLast(3))
        let whole = DotStuffing.unstuff(wire)
        for cut in 0...wire.count {
            var out: [UInt8] = []
            var lineStart = true
            for piece in pieces(wire, cutAt: [cut]) {
                lineStart = piece.withUnsafeBytes { DotStuffing.unstuff($0, atLineStart: lineStart, into: &out) }
            }
            #expect(out == whole, "cut at \(cut)")
        }
    }
}
