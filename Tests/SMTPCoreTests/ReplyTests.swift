import Testing
@testable import SMTPCore

@Suite("SMTPReplyLine parsing")
struct ReplyLineTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let line: [UInt8]
        let expected: SMTPReplyLine
        init(_ line: String, code: Int?, continuation: Bool = false, text: ByteString = "", missingSeparator: Bool = false) {
            self.init(bytes: Array(line.utf8), code: code, continuation: continuation, text: text, missingSeparator: missingSeparator)
        }
        init(bytes: [UInt8], code: Int?, continuation: Bool = false, text: ByteString = "", missingSeparator: Bool = false) {
            line = bytes
            expected = SMTPReplyLine(code: code, isContinuation: continuation, text: text, missingSeparator: missingSeparator)
        }
        var testDescription: String { ByteString(line).description }
    }

    static let cases: [Case] = [
        .init("250 OK", code: 250, text: "OK"),
        .init("250 OK\r\n", code: 250, text: "OK"),
        .init("250 OK\n", code: 250, text: "OK"),
        .init("250-PIPELINING", code: 250, continuation: true, text: "PIPELINING"),
        .init("250-PIPELINING\r\n", code: 250, continuation: true, text: "PIPELINING"),
        .init("250", code: 250),
        .init("250\r\n", code: 250),
        .init("250 ", code: 250),
        .init("421-\r\n", code: 421, continuation: true),
        .init("250OK", code: 250, text: "OK", missingSeparator: true),
        .init("250OK\r\n", code: 250, text: "OK", missingSeparator: true),
        .init("250\tOK", code: 250, text: "\tOK", missingSeparator: true),
        .init("550 5.1.1 <x>: rejected", code: 550, text: "5.1.1 <x>: rejected"),
        .init("354 Start mail input; end with <CRLF>.<CRLF>\r\n", code: 354, text: "Start mail input; end with <CRLF>.<CRLF>"),
        .init("220 mail.example.com ESMTP Postfix\r\n", code: 220, text: "mail.example.com ESMTP Postfix"),
        .init("599 x", code: 599, text: "x"),
        .init("200 x", code: 200, text: "x"),
        .init("250  two spaces", code: 250, text: " two spaces"),
        // Not replies: four digits, first digit outside 2-5, too short, no digits.
        .init("2500 x", code: nil, text: "2500 x"),
        .init("2500", code: nil, text: "2500"),
        .init("199 x", code: nil, text: "199 x"),
        .init("600 x", code: nil, text: "600 x"),
        .init("099 x", code: nil, text: "099 x"),
        .init("25", code: nil, text: "25"),
        .init("25 OK", code: nil, text: "25 OK"),
        .init("2x0 OK", code: nil, text: "2x0 OK"),
        .init("hello", code: nil, text: "hello"),
        .init("hello\r\n", code: nil, text: "hello"),
        .init("", code: nil),
        // Non-UTF-8 text survives.
        .init(bytes: Array("250 ".utf8) + [0xFF, 0x00, 0xC3] + [0x0D, 0x0A], code: 250, text: ByteString([0xFF, 0x00, 0xC3])),
    ]

    @Test("code, separator and text", arguments: cases)
    func parse(_ fixture: Case) {
        let parsed = fixture.line.withUnsafeBytes { SMTPReplyLine(line: $0) }
        #expect(parsed == fixture.expected)
    }

    @Test("the String initialiser agrees with the byte one", arguments: cases.filter { String(validating: $0.line, as: UTF8.self) != nil })
    func stringInit(_ fixture: Case) {
        #expect(SMTPReplyLine(String(decoding: fixture.line, as: UTF8.self)) == fixture.expected)
    }

    @Test("code(_:) reads the three digits of a reply", arguments: [
        ("250 OK", 250), ("220", 220), ("554-x", 554), ("250OK", 250),
        ("2500", nil), ("199 x", nil), ("600", nil), ("25", nil), ("abc", nil), ("", nil), ("2 5", nil),
    ] as [(String, Int?)])
    func code(_ line: String, _ expected: Int?) {
        let code = Array(line.utf8).withUnsafeBytes { SMTPReplyLine.code($0) }
        #expect(code == expected)
    }

    /// Lines already in canonical form: parsing then encoding gives the same bytes.
    static let canonicalLines: [String] = [
        "250 OK\r\n", "250-PIPELINING\r\n", "250\r\n", "250OK\r\n", "421-\r\n", "hello\r\n", "\r\n",
        "550 5.1.1 <x>: rejected\r\n", "2500 x\r\n", "250  two spaces\r\n", "250-SIZE 10240000\r\n",
    ]

    @Test("encode(parse(line)) == line for canonical lines", arguments: canonicalLines)
    func byteRoundTrip(_ line: String) {
        #expect(SMTPReplyLine(line).encoded == Array(line))
    }

    @Test("parse(encode(line)) == line for every fixture", arguments: cases)
    func structuralRoundTrip(_ fixture: Case) {
        let reparsed = fixture.expected.encoded.withUnsafeBytes { SMTPReplyLine(line: $0) }
        #expect(reparsed == fixture.expected)
    }
}

@Suite("SMTPReply")
struct ReplyTests {
    @Test("one code, several texts: continuation on all but the last line")
    func multiLine() {
        let reply = SMTPReply(code: 250, ["mail.example.com", "PIPELINING", "SIZE 10240000"])
        #expect(reply.lines.map(\.isContinuation) == [true, true, false])
        #expect(reply.code == 250)
        #expect(reply.codeClass == 2)
        #expect(reply.encoded == Array("250-mail.example.com\r\n250-PIPELINING\r\n250 SIZE 10240000\r\n"))
    }

    @Test("no texts gives one bare-code line")
    func empty() {
        let reply = SMTPReply(code: 221, [])
        #expect(reply.lines.count == 1)
        #expect(reply.encoded == Array("221\r\n"))
    }

    @Test("the code is the final line's")
    func codeIsLastLine() {
        let reply = SMTPReply(lines: [SMTPReplyLine("250-a"), SMTPReplyLine("451 b")])
        #expect(reply.code == 451)
        #expect(reply.codeClass == 4)
        #expect(SMTPReply(lines: []).code == nil)
        #expect(SMTPReply(lines: [SMTPReplyLine("hello")]).codeClass == nil)
    }

    static let replies: [SMTPReply] = [
        SMTPReply(code: 220, ["mail.example.com ESMTP"]),
        SMTPReply(code: 250, ["mail.example.com", "PIPELINING", "8BITMIME", "SIZE 10240000", "AUTH PLAIN LOGIN"]),
        SMTPReply(code: 550, ["5.1.1 <nobody@example.com>: Recipient address rejected"]),
        SMTPReply(code: 334, [""]),
        SMTPReply(code: 354, ["End data with <CR><LF>.<CR><LF>"]),
        SMTPReply(lines: [SMTPReplyLine(code: 250, text: ByteString([0xFF, 0xFE]))]),
    ]

    @Test("encoded lines parse back to the same reply", arguments: replies)
    func roundTrip(_ reply: SMTPReply) {
        let bytes = reply.encoded
        var lines: [SMTPReplyLine] = []
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            lines.append(Array(bytes[start...index]).withUnsafeBytes { SMTPReplyLine(line: $0) })
            start = index + 1
        }
        #expect(start == bytes.count, "every line ends with LF")
        #expect(SMTPReply(lines: lines) == reply)
    }

    @Test("enhanced status is read from the first line")
    func enhancedStatusOfReply() {
        #expect(SMTPReply(lines: [SMTPReplyLine("550 5.1.1 <x>: rejected")]).enhancedStatus == EnhancedStatusCode(statusClass: 5, subject: 1, detail: 1))
        #expect(SMTPReply(code: 250, ["2.0.0 Ok: queued as ABC"]).enhancedStatus?.description == "2.0.0")
        #expect(SMTPReply(code: 250, ["OK"]).enhancedStatus == nil)
        #expect(SMTPReply(code: 250, ["mail.example.com", "2.0.0 late"]).enhancedStatus == nil)
    }
}

@Suite("Enhanced status codes (RFC 3463)")
struct EnhancedStatusCodeTests {
    @Test("valid codes", arguments: [
        ("5.1.1", 5, 1, 1),
        ("5.1.1 <x>: rejected", 5, 1, 1),
        ("2.0.0 Ok", 2, 0, 0),
        ("4.7.0 Try again later", 4, 7, 0),
        ("5.7.8 Authentication credentials invalid", 5, 7, 8),
        ("2.1.5", 2, 1, 5),
        ("5.123.999 x", 5, 123, 999),
    ] as [(String, Int, Int, Int)])
    func valid(_ text: String, _ statusClass: Int, _ subject: Int, _ detail: Int) {
        let code = EnhancedStatusCode(prefixOf: Array(text.utf8))
        #expect(code == EnhancedStatusCode(statusClass: statusClass, subject: subject, detail: detail))
        #expect(code?.description == "\(statusClass).\(subject).\(detail)")
    }

    @Test("invalid codes", arguments: [
        "3.1.1",        // class must be 2, 4 or 5
        "1.0.0",
        "55.1.1",       // class is one digit
        "05.1.1",
        "5.1",          // three parts
        "5.1.",
        "5.1.1.1",
        "5..1",
        ".5.1.1",
        "5.1000.1",     // at most three digits per part
        "5.1.1000",
        "5.1.1x",
        "5.1.1\tx",
        "x5.1.1",
        "OK",
        "",
        " 5.1.1",
    ])
    func invalid(_ text: String) {
        #expect(EnhancedStatusCode(prefixOf: Array(text.utf8)) == nil)
    }
}

@Suite("EHLO capabilities")
struct EHLOCapabilitiesTests {
    static let reply = SMTPReply(code: 250, [
        "mail.example.com Hello client [192.0.2.1]",
        "PIPELINING",
        "SIZE 10240000",
        "auth plain LOGIN cram-md5",
        "STARTTLS",
        "ENHANCEDSTATUSCODES",
        "8BITMIME",
        "CHUNKING",
        "SMTPUTF8",
    ])

    @Test("greeting, keywords, SIZE and AUTH")
    func parse() throws {
        let capabilities = try #require(EHLOCapabilities(reply: Self.reply))
        #expect(capabilities.greeting == "mail.example.com Hello client [192.0.2.1]")
        #expect(capabilities.capabilities.map(\.keyword) == ["PIPELINING", "SIZE", "AUTH", "STARTTLS", "ENHANCEDSTATUSCODES", "8BITMIME", "CHUNKING", "SMTPUTF8"])
        #expect(capabilities.sizeLimit == 10_240_000)
        #expect(capabilities.authMechanisms == ["PLAIN", "LOGIN", "CRAM-MD5"])
        #expect(capabilities["auth"]?.parameters == ["plain", "LOGIN", "cram-md5"])
    }

    @Test("contains() ignores case", arguments: ["PIPELINING", "pipelining", "StartTLS", "chunking", "8bitmime", "SMTPUTF8"])
    func contains(_ keyword: String) throws {
        let capabilities = try #require(EHLOCapabilities(reply: Self.reply))
        #expect(capabilities.contains(keyword))
    }

    @Test("contains() is false for what was not announced", arguments: ["DSN", "BINARYMIME", "PIPE", "SIZE 10240000", ""])
    func doesNotContain(_ keyword: String) throws {
        let capabilities = try #require(EHLOCapabilities(reply: Self.reply))
        #expect(!capabilities.contains(keyword))
    }

    @Test("SIZE without a usable value, and no SIZE at all")
    func sizeVariants() throws {
        #expect(try #require(EHLOCapabilities(reply: SMTPReply(code: 250, ["x", "SIZE"]))).sizeLimit == nil)
        #expect(try #require(EHLOCapabilities(reply: SMTPReply(code: 250, ["x", "SIZE big"]))).sizeLimit == nil)
        #expect(try #require(EHLOCapabilities(reply: SMTPReply(code: 250, ["x", "size 0"]))).sizeLimit == 0)
        let bare = try #require(EHLOCapabilities(reply: SMTPReply(code: 250, ["only.example.com"])))
        #expect(bare.capabilities.isEmpty)
        #expect(bare.sizeLimit == nil)
        #expect(bare.authMechanisms.isEmpty)
    }

    @Test("only a 250 reply carries capabilities", arguments: [500, 502, 421, 220])
    func notPositive(_ code: Int) {
        #expect(EHLOCapabilities(reply: SMTPReply(code: code, ["x", "PIPELINING"])) == nil)
    }

    @Test("the reply a server would send parses back to the same capabilities")
    func roundTrip() throws {
        let capabilities = try #require(EHLOCapabilities(reply: Self.reply))
        #expect(EHLOCapabilities(reply: capabilities.reply) == capabilities)
        // Keywords come back upper-cased, parameters as sent.
        #expect(capabilities.reply.lines.count == Self.reply.lines.count)
        #expect(capabilities.reply.lines[3].text == "AUTH plain LOGIN cram-md5")
        #expect(capabilities.reply.lines.last?.isContinuation == false)
    }

    @Test("a greeting with non-UTF-8 bytes survives the round trip through reply")
    func nonUTF8Greeting() throws {
        let greeting = ByteString(Array("mx.example ".utf8) + [0xFF, 0xFE])
        let capabilities = EHLOCapabilities(greeting: greeting, capabilities: [.init(keyword: "PIPELINING")])
        // Compared as byte arrays: ByteString's description would render `\xFF` and the four
        // characters `\`, `x`, `F`, `F` the same way.
        #expect(capabilities.reply.lines.first?.text.bytes == greeting.bytes)
        #expect(EHLOCapabilities(reply: capabilities.reply)?.greeting.bytes == greeting.bytes)
    }
}
