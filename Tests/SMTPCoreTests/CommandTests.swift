import Testing
@testable import SMTPCore

// MARK: Verbs

@Suite("SMTPVerb recognition")
struct VerbTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let spelling: String
        let verb: SMTPVerb
        var testDescription: String { "\"\(spelling)\"" }
    }

    static let cases: [Case] = [
        // RFC 5321 4.1, every verb, in several spellings.
        .init(spelling: "HELO", verb: .helo), .init(spelling: "helo", verb: .helo), .init(spelling: "HeLo", verb: .helo),
        .init(spelling: "EHLO", verb: .ehlo), .init(spelling: "ehlo", verb: .ehlo),
        .init(spelling: "MAIL", verb: .mail), .init(spelling: "mail", verb: .mail), .init(spelling: "Mail", verb: .mail),
        .init(spelling: "RCPT", verb: .rcpt), .init(spelling: "rcpt", verb: .rcpt),
        .init(spelling: "DATA", verb: .data), .init(spelling: "data", verb: .data),
        .init(spelling: "RSET", verb: .rset), .init(spelling: "rset", verb: .rset),
        .init(spelling: "NOOP", verb: .noop), .init(spelling: "noop", verb: .noop),
        .init(spelling: "QUIT", verb: .quit), .init(spelling: "quit", verb: .quit),
        .init(spelling: "VRFY", verb: .vrfy), .init(spelling: "vrfy", verb: .vrfy),
        .init(spelling: "EXPN", verb: .expn), .init(spelling: "expn", verb: .expn),
        .init(spelling: "HELP", verb: .help), .init(spelling: "help", verb: .help),
        // Extensions.
        .init(spelling: "AUTH", verb: .auth), .init(spelling: "auth", verb: .auth),
        .init(spelling: "STARTTLS", verb: .starttls), .init(spelling: "starttls", verb: .starttls), .init(spelling: "StartTLS", verb: .starttls),
        .init(spelling: "BDAT", verb: .bdat), .init(spelling: "bdat", verb: .bdat),
        // Unknown verbs are kept as spelled.
        .init(spelling: "XCLIENT", verb: .unknown("XCLIENT")),
        .init(spelling: "lhlo", verb: .unknown("lhlo")),
        .init(spelling: "ETRN", verb: .unknown("ETRN")),
        .init(spelling: "TURN", verb: .unknown("TURN")),
        .init(spelling: "HEL", verb: .unknown("HEL")),
        .init(spelling: "HELOX", verb: .unknown("HELOX")),
        .init(spelling: "STARTTL", verb: .unknown("STARTTL")),
        .init(spelling: "STARTTLSX", verb: .unknown("STARTTLSX")),
        .init(spelling: "DAT4", verb: .unknown("DAT4")),
        .init(spelling: "", verb: .unknown("")),
        .init(spelling: "HELO:", verb: .unknown("HELO:")),
    ]

    @Test("recognised ignoring ASCII case, unknown kept verbatim", arguments: cases)
    func recognition(_ fixture: Case) {
        let bytes = Array(fixture.spelling.utf8)
        let verb = bytes.withUnsafeBytes { SMTPVerb(bytes: $0) }
        #expect(verb == fixture.verb)
        #expect(SMTPVerb(bytes) == fixture.verb)
    }

    @Test("a verb with a high-bit byte that only differs from HELO in bit 7 is unknown")
    func highBitBytesAreNotFolded() {
        let bytes: [UInt8] = [0x48, 0x45, 0x4C, 0x4F | 0x80]
        #expect(SMTPVerb(bytes) == .unknown(ByteString(bytes)))
    }

    @Test("every known verb parses back from its canonical name", arguments: SMTPVerb.known)
    func nameRoundTrip(_ verb: SMTPVerb) {
        #expect(SMTPVerb(verb.name.utf8) == verb)
        #expect(verb.name == verb.name.uppercased())
    }

    @Test("the known list holds the 11 RFC 5321 verbs plus AUTH, STARTTLS, BDAT, once each")
    func knownList() {
        #expect(SMTPVerb.known.count == 14)
        #expect(Set(SMTPVerb.known).count == 14)
        #expect(SMTPVerb.known.map(\.name) == ["HELO", "EHLO", "MAIL", "RCPT", "DATA", "RSET", "NOOP", "QUIT", "VRFY", "EXPN", "HELP", "AUTH", "STARTTLS", "BDAT"])
    }

    @Test("unknown verbs keep their spelling as their name")
    func unknownName() {
        #expect(SMTPVerb.unknown("xclient").name == "xclient")
    }
}

// MARK: Command lines

@Suite("SMTPCommand parsing")
struct CommandParseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let line: [UInt8]
        let verb: SMTPVerb
        let argument: ByteString
        init(_ line: String, _ verb: SMTPVerb, _ argument: ByteString = "") {
            self.line = Array(line.utf8)
            self.verb = verb
            self.argument = argument
        }
        init(bytes: [UInt8], _ verb: SMTPVerb, _ argument: ByteString) {
            self.line = bytes
            self.verb = verb
            self.argument = argument
        }
        var testDescription: String { ByteString(line).description }
    }

    static let cases: [Case] = [
        .init("HELO client.example.com\r\n", .helo, "client.example.com"),
        .init("EHLO [192.0.2.1]\r\n", .ehlo, "[192.0.2.1]"),
        .init("ehlo client\r\n", .ehlo, "client"),
        .init("MAIL FROM:<alice@example.com> SIZE=1024\r\n", .mail, "FROM:<alice@example.com> SIZE=1024"),
        .init("RCPT TO:<bob@example.com>\r\n", .rcpt, "TO:<bob@example.com>"),
        .init("DATA\r\n", .data),
        .init("RSET\r\n", .rset),
        .init("NOOP\r\n", .noop),
        .init("NOOP keep me\r\n", .noop, "keep me"),
        .init("QUIT\r\n", .quit),
        .init("quit\r\n", .quit),
        .init("VRFY bob\r\n", .vrfy, "bob"),
        .init("EXPN staff\r\n", .expn, "staff"),
        .init("HELP MAIL\r\n", .help, "MAIL"),
        .init("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", .auth, "PLAIN AGFsaWNlAHNlY3JldA=="),
        .init("STARTTLS\r\n", .starttls),
        .init("BDAT 100 LAST\r\n", .bdat, "100 LAST"),
        .init("XCLIENT NAME=spike.example.com\r\n", .unknown("XCLIENT"), "NAME=spike.example.com"),
        // Line endings: CRLF, bare LF, none.
        .init("DATA\n", .data),
        .init("NOOP", .noop),
        .init("HELO x\r\r\n", .helo, "x"),
        // Exactly one separator belongs to the syntax; further spaces are argument.
        .init("HELO  two-spaces\r\n", .helo, " two-spaces"),
        .init("HELO \r\n", .helo, ""),
        .init("HELO\tx\r\n", .helo, "x"),
        // An empty line and a line starting with a space have an empty verb.
        .init("\r\n", .unknown("")),
        .init(" HELO x\r\n", .unknown(""), "HELO x"),
        // Non-UTF-8 bytes survive in the argument and in an unknown verb.
        .init(bytes: Array("EHLO ".utf8) + [0xFF, 0xFE, 0x00, 0x80] + [0x0D, 0x0A], .ehlo, ByteString([0xFF, 0xFE, 0x00, 0x80])),
        .init(bytes: [0x58, 0xFF, 0x20, 0x61, 0x0D, 0x0A], .unknown(ByteString([0x58, 0xFF])), "a"),
        .init("MAIL FROM:<jösé@exämple.de> SMTPUTF8\r\n", .mail, "FROM:<jösé@exämple.de> SMTPUTF8"),
    ]

    @Test("splits verb and argument", arguments: cases)
    func parse(_ fixture: Case) {
        let command = SMTPCommand(line: fixture.line)
        #expect(command.verb == fixture.verb)
        #expect(command.argument == fixture.argument)
        // The buffer-pointer initialiser agrees with the array one.
        let viaPointer = fixture.line.withUnsafeBytes { SMTPCommand(line: $0) }
        #expect(viaPointer == command)
    }

    @Test("the String initialiser reads UTF-8")
    func stringInit() {
        #expect(SMTPCommand("RCPT TO:<bob@example.com>") == SMTPCommand(verb: .rcpt, argument: "TO:<bob@example.com>"))
    }

    @Test("description spells the verb canonically and escapes odd bytes")
    func description() {
        #expect(SMTPCommand("mail FROM:<a@b>").description == "MAIL FROM:<a@b>")
        #expect(SMTPCommand("QUIT").description == "QUIT")
        #expect(SMTPCommand(line: Array("EHLO ".utf8) + [0xFF]).description == "EHLO \\xFF")
    }

    @Test("encoded is VERB SP argument CRLF, upper-casing known verbs")
    func encoded() {
        #expect(SMTPCommand("mail FROM:<a@b>").encoded == Array("MAIL FROM:<a@b>\r\n"))
        #expect(SMTPCommand("data").encoded == Array("DATA\r\n"))
        #expect(SMTPCommand(verb: .noop, argument: "").encoded == Array("NOOP\r\n"))
    }
}

// MARK: MAIL FROM / RCPT TO

@Suite("MAIL FROM and RCPT TO paths")
struct MailPathTests {
    typealias P = MailPath.Parameter

    struct Case: Sendable, CustomTestStringConvertible {
        let line: [UInt8]
        let path: MailPath
        init(_ line: String, _ address: ByteString, bracketed: Bool = true, _ parameters: [P] = []) {
            self.init(bytes: Array(line.utf8), address, bracketed: bracketed, parameters)
        }
        init(bytes: [UInt8], _ address: ByteString, bracketed: Bool = true, _ parameters: [P] = []) {
            line = bytes
            path = MailPath(address: address, bracketed: bracketed, parameters: parameters)
        }
        var testDescription: String { ByteString(line).description }
    }

    static let cases: [Case] = [
        .init("MAIL FROM:<alice@example.com>\r\n", "alice@example.com"),
        .init("mail from:<alice@example.com>\r\n", "alice@example.com"),
        .init("MAIL From:<alice@example.com>\r\n", "alice@example.com"),
        .init("RCPT TO:<bob@example.com>\r\n", "bob@example.com"),
        .init("rcpt to:<bob@example.com>\r\n", "bob@example.com"),
        // The null reverse-path of bounces.
        .init("MAIL FROM:<>\r\n", ""),
        .init("MAIL FROM:<> SIZE=2048\r\n", "", [P(keyword: "SIZE", value: "2048")]),
        // A space after the colon is common and tolerated.
        .init("MAIL FROM: <a@b>\r\n", "a@b"),
        .init("RCPT TO:   <a@b> NOTIFY=NEVER\r\n", "a@b", [P(keyword: "NOTIFY", value: "NEVER")]),
        // Missing brackets.
        .init("MAIL FROM:a@b\r\n", "a@b", bracketed: false),
        .init("MAIL FROM:a@b SIZE=10\r\n", "a@b", bracketed: false, [P(keyword: "SIZE", value: "10")]),
        .init("MAIL FROM:<a@b\r\n", "<a@b", bracketed: false),
        .init("MAIL FROM:\r\n", "", bracketed: false),
        // ESMTP parameters (RFC 1870 SIZE, RFC 6152 BODY, RFC 6531 SMTPUTF8, RFC 3461 NOTIFY/ORCPT/RET/ENVID).
        .init("MAIL FROM:<a@b> SIZE=1024 BODY=8BITMIME SMTPUTF8\r\n", "a@b",
              [P(keyword: "SIZE", value: "1024"), P(keyword: "BODY", value: "8BITMIME"), P(keyword: "SMTPUTF8", value: nil)]),
        .init("MAIL FROM:<a@b> size=1024 body=8bitmime smtputf8\r\n", "a@b",
              [P(keyword: "SIZE", value: "1024"), P(keyword: "BODY", value: "8bitmime"), P(keyword: "SMTPUTF8", value: nil)]),
        .init("MAIL FROM:<a@b> RET=HDRS ENVID=QQ314159\r\n", "a@b",
              [P(keyword: "RET", value: "HDRS"), P(keyword: "ENVID", value: "QQ314159")]),
        .init("RCPT TO:<b@c> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b@c\r\n", "b@c",
              [P(keyword: "NOTIFY", value: "SUCCESS,FAILURE"), P(keyword: "ORCPT", value: "rfc822;b@c")]),
        .init("MAIL FROM:<a@b>  SIZE=1   BODY=7BIT\r\n", "a@b", [P(keyword: "SIZE", value: "1"), P(keyword: "BODY", value: "7BIT")]),
        .init("MAIL FROM:<a@b> AUTH=<>\r\n", "a@b", [P(keyword: "AUTH", value: "<>")]),
        .init("MAIL FROM:<a@b> X=\r\n", "a@b", [P(keyword: "X", value: "")]),
        // Odd but real paths.
        .init("RCPT TO:<Postmaster>\r\n", "Postmaster"),
        // Quoted local parts (RFC 5321 4.1.2): qtextSMTP includes space and ">".
        .init("RCPT TO:<\"john doe\"@example.com>\r\n", "\"john doe\"@example.com"),
        .init("MAIL FROM:<\"a>b\"@example.com> SIZE=10\r\n", "\"a>b\"@example.com", [P(keyword: "SIZE", value: "10")]),
        .init("RCPT TO:<@relay.example:bob@example.com>\r\n", "@relay.example:bob@example.com"),
        .init("MAIL FROM:<jösé@exämple.de> SMTPUTF8\r\n", "jösé@exämple.de", [P(keyword: "SMTPUTF8", value: nil)]),
        // Non-UTF-8 bytes survive.
        .init(bytes: Array("MAIL FROM:<".utf8) + [0xFF, 0xC0] + Array("@b> X-TAG=".utf8) + [0xFE] + [0x0D, 0x0A],
              ByteString([0xFF, 0xC0] + Array("@b".utf8)), [P(keyword: "X-TAG", value: ByteString([0xFE]))]),
    ]

    @Test("parses the path and parameters", arguments: cases)
    func parse(_ fixture: Case) {
        let command = SMTPCommand(line: fixture.line)
        #expect(command.mailPath == fixture.path)
    }

    static let notPaths: [String] = [
        "MAIL alice@example.com",
        "MAIL FROM<a@b>",
        "MAIL FROM :<a@b>",
        "MAIL TO:<a@b>",
        "RCPT FROM:<a@b>",
        "RCPT TO",
        "MAIL",
        "HELO FROM:<a@b>",
        "DATA TO:<a@b>",
    ]

    @Test("nil without FROM: / TO:, or for other verbs", arguments: notPaths)
    func notAPath(_ line: String) {
        #expect(SMTPCommand(line).mailPath == nil)
    }

    @Test("parameter lookup ignores case and distinguishes absent from valueless")
    func parameterLookup() throws {
        let path = try #require(SMTPCommand("MAIL FROM:<a@b> size=1024 SMTPUTF8").mailPath)
        #expect(path.parameter("SIZE") == .some(.some("1024")))
        #expect(path.parameter("size") == .some(.some("1024")))
        #expect(path.parameter("SmtpUtf8") == .some(.none))
        #expect(path.parameter("BODY") == .none)
    }

    @Test("encoded writes brackets and KEY=VALUE parameters")
    func encoded() {
        let path = MailPath(address: "a@b", parameters: [.init(keyword: "SIZE", value: "10"), .init(keyword: "SMTPUTF8", value: nil)])
        #expect(path.encoded == Array("<a@b> SIZE=10 SMTPUTF8"))
        #expect(MailPath(address: "").encoded == Array("<>"))
        #expect(MailPath(address: "a@b", bracketed: false).encoded == Array("a@b"))
        #expect(SMTPCommand.mail(from: path).encoded == Array("MAIL FROM:<a@b> SIZE=10 SMTPUTF8\r\n"))
        #expect(SMTPCommand.rcpt(to: MailPath(address: "c@d")).encoded == Array("RCPT TO:<c@d>\r\n"))
    }

    @Test("MAIL FROM / RCPT TO built from a path read back the same path", arguments: cases.map(\.path))
    func pathRoundTrip(_ path: MailPath) {
        #expect(SMTPCommand.mail(from: path).mailPath == path)
        #expect(SMTPCommand.rcpt(to: path).mailPath == path)
        let reparsed = SMTPCommand(line: SMTPCommand.mail(from: path).encoded)
        #expect(reparsed.mailPath == path)
    }
}

// MARK: BDAT

@Suite("BDAT chunk sizes")
struct BDATParseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let line: String
        let size: Int?
        let last: Bool
        var testDescription: String { line }
    }

    static let cases: [Case] = [
        .init(line: "BDAT 100", size: 100, last: false),
        .init(line: "BDAT 100 LAST", size: 100, last: true),
        .init(line: "bdat 0 last", size: 0, last: true),
        .init(line: "BDAT 0", size: 0, last: false),
        .init(line: "BDAT 7 Last\r\n", size: 7, last: true),
        .init(line: "BDAT 100  LAST", size: 100, last: true),
        .init(line: "BDAT 007", size: 7, last: false),
        .init(line: "BDAT 999999999999999", size: 999_999_999_999_999, last: false),
        .init(line: "BDAT -1", size: nil, last: false),
        .init(line: "BDAT +5", size: nil, last: false),
        .init(line: "BDAT 99999999999999999999", size: nil, last: false),
        .init(line: "BDAT 1000000000000000", size: nil, last: false),
        .init(line: "BDAT 1 FIRST", size: nil, last: false),
        .init(line: "BDAT 1 LASTS", size: nil, last: false),
        .init(line: "BDAT 1 LAST junk", size: nil, last: false),
        .init(line: "BDAT", size: nil, last: false),
        .init(line: "BDAT LAST", size: nil, last: false),
        .init(line: "BDAT 1e3", size: nil, last: false),
        .init(line: "BDAT 0x10", size: nil, last: false),
        .init(line: "DATA 100", size: nil, last: false),
    ]

    @Test("size and LAST", arguments: cases)
    func parse(_ fixture: Case) {
        let chunk = SMTPCommand(fixture.line).binaryDataChunk
        #expect(chunk?.size == fixture.size)
        if fixture.size != nil { #expect(chunk?.isLast == fixture.last) }
    }

    @Test("SMTPCommand.bdat writes what binaryDataChunk reads", arguments: [(0, true), (0, false), (5, false), (123_456, true)])
    func build(size: Int, last: Bool) {
        let command = SMTPCommand.bdat(size: size, last: last)
        #expect(command.encoded == Array("BDAT \(size)\(last ? " LAST" : "")\r\n"))
        let chunk = SMTPCommand(line: command.encoded).binaryDataChunk
        #expect(chunk?.size == size)
        #expect(chunk?.isLast == last)
    }
}

// MARK: AUTH

@Suite("AUTH mechanism and initial response")
struct AuthParseTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let line: String
        let mechanism: String?
        /// The initial response, as text, or nil.
        let initialResponse: String?
        var testDescription: String { line }
    }

    static let cases: [Case] = [
        .init(line: "AUTH PLAIN", mechanism: "PLAIN", initialResponse: nil),
        .init(line: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="),
        .init(line: "auth plain AGFsaWNlAHNlY3JldA==\r\n", mechanism: "PLAIN", initialResponse: "AGFsaWNlAHNlY3JldA=="),
        .init(line: "AUTH LOGIN", mechanism: "LOGIN", initialResponse: nil),
        .init(line: "AUTH LOGIN YWxpY2U=", mechanism: "LOGIN", initialResponse: "YWxpY2U="),
        .init(line: "AUTH cram-md5", mechanism: "CRAM-MD5", initialResponse: nil),
        .init(line: "AUTH XOAUTH2 dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2tlbgEB", mechanism: "XOAUTH2",
              initialResponse: "dXNlcj1hbGljZQFhdXRoPUJlYXJlciB0b2tlbgEB"),
        .init(line: "AUTH PLAIN =", mechanism: "PLAIN", initialResponse: "="),
        .init(line: "AUTH PLAIN    spaced", mechanism: "PLAIN", initialResponse: "spaced"),
        .init(line: "AUTH PLAIN ", mechanism: "PLAIN", initialResponse: nil),
        .init(line: "AUTH", mechanism: nil, initialResponse: nil),
        .init(line: "HELO PLAIN abc", mechanism: nil, initialResponse: nil),
    ]

    @Test("mechanism is upper-cased; the initial response range covers exactly the response", arguments: cases)
    func parse(_ fixture: Case) {
        let command = SMTPCommand(fixture.line)
        #expect(command.authMechanism == fixture.mechanism)
        let range = command.authSecretRange
        let text = range.map { String(decoding: command.argument.bytes[$0], as: UTF8.self) }
        #expect(text == fixture.initialResponse)
    }

    @Test("redacting the initial response keeps everything else")
    func redactInitialResponse() throws {
        let line = Array("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n")
        let command = SMTPCommand(line: line)
        let range = try #require(command.authSecretRange)
        // The range is within the argument, which starts after "AUTH ".
        let inLine = (range.lowerBound + 5)..<(range.upperBound + 5)
        let redacted = line.withUnsafeBytes { Secrets.redact($0, secret: inLine) }
        #expect(redacted == Array("AUTH PLAIN [REDACTED]\r\n"))
    }
}

// MARK: Round trips

@Suite("SMTPCommand encode/parse round trip")
struct CommandRoundTripTests {
    static let commands: [SMTPCommand] =
        SMTPVerb.known.map { SMTPCommand(verb: $0) } + [
            SMTPCommand(verb: .helo, argument: "client.example.com"),
            SMTPCommand(verb: .ehlo, argument: "[IPv6:2001:db8::1]"),
            SMTPCommand(verb: .mail, argument: "FROM:<a@b> SIZE=10 BODY=8BITMIME"),
            SMTPCommand(verb: .mail, argument: "FROM:<>"),
            SMTPCommand(verb: .rcpt, argument: ByteString(Array("TO:<".utf8) + [0xFF, 0x00, 0xC3] + Array("@b> NOTIFY=NEVER".utf8))),
            SMTPCommand(verb: .noop, argument: " leading space"),
            SMTPCommand(verb: .noop, argument: "trailing space "),
            SMTPCommand(verb: .vrfy, argument: "a\tb"),
            SMTPCommand(verb: .auth, argument: "PLAIN AGFsaWNlAHNlY3JldA=="),
            SMTPCommand(verb: .bdat, argument: "0 LAST"),
            SMTPCommand(verb: .unknown("XCLIENT"), argument: "NAME=spike.example.com ADDR=192.0.2.1"),
            SMTPCommand(verb: .unknown("lhlo"), argument: "x"),
            SMTPCommand(verb: .unknown(""), argument: "HELO x"),
            // An unknown verb with a byte that is not printable UTF-8.
            SMTPCommand(verb: .unknown(ByteString([0x58, 0xFF])), argument: "a"),
        ]

    @Test("SMTPCommand(line: c.encoded) == c", arguments: commands)
    func roundTrip(_ command: SMTPCommand) {
        let encoded = command.encoded
        #expect(encoded.suffix(2) == [0x0D, 0x0A])
        #expect(SMTPCommand(line: encoded) == command, "encoded as \(encoded)")
    }

    @Test("encoding a parsed line gives back the line when it is already canonical", arguments: [
        "HELO x\r\n", "MAIL FROM:<a@b> SIZE=1\r\n", "DATA\r\n", "XCLIENT NAME=x\r\n", "AUTH LOGIN\r\n",
    ])
    func canonicalLines(_ line: String) {
        #expect(SMTPCommand(line).encoded == Array(line))
    }

    @Test("encoding upper-cases known verbs and normalises the line ending")
    func normalises() {
        #expect(SMTPCommand("rcpt TO:<a@b>\n").encoded == Array("RCPT TO:<a@b>\r\n"))
    }
}
