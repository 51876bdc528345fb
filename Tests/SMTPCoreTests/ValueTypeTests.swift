import Testing
@testable import SMTPCore

@Suite("ByteString")
struct ByteStringTests {
    @Test("description keeps printable UTF-8 and tabs, escapes the rest", arguments: [
        ([0x61, 0x62], "ab"),
        ([0x61, 0x00, 0x62], "a\\x00b"),
        ([0x0D, 0x0A], "\\x0D\\x0A"),
        ([0x09], "\t"),
        ([0x7F], "\\x7F"),
        ([0x1B, 0x5B, 0x33, 0x31, 0x6D], "\\x1B[31m"),
        ([0xC3, 0xA9], "é"),
        ([0xE2, 0x82, 0xAC], "€"),
        ([0xF0, 0x9F, 0x98, 0x80], "😀"),
        ([0xFF], "\\xFF"),
        ([0x80, 0x41], "\\x80A"),
        ([0xC3], "\\xC3"),                      // truncated sequence at the end
        ([0xE2, 0x82], "\\xE2\\x82"),
        ([0xC0, 0x80], "\\xC0\\x80"),           // overlong NUL
        ([0xED, 0xA0, 0x80], "\\xED\\xA0\\x80"), // UTF-16 surrogate
        ([0xC3, 0x41], "\\xC3A"),               // lead byte followed by ASCII
        ([0x5C], "\\"),
        // C1 control characters are controls too, even as valid UTF-8 (U+0085 NEL, U+009B CSI).
        ([0xC2, 0x85], "\\xC2\\x85"),
        ([0xC2, 0x9B, 0x33, 0x31, 0x6D], "\\xC2\\x9B31m"),
    ] as [([UInt8], String)])
    func description(_ bytes: [UInt8], _ expected: String) {
        #expect(ByteString(bytes).description == expected)
        #expect(ByteString.escaped(bytes) == expected)
    }

    @Test("string is nil exactly for invalid UTF-8")
    func string() {
        #expect(ByteString("héllo").string == "héllo")
        #expect(ByteString([0x61, 0xFF]).string == nil)
        #expect(ByteString([UInt8]()).string == "")
    }

    @Test("initialisers agree and keep bytes")
    func initialisers() {
        let literal: ByteString = "abc"
        #expect(literal == ByteString([0x61, 0x62, 0x63]))
        #expect(literal == ByteString("abc".utf8))
        #expect(literal == ByteString("abc"))
        #expect(literal.count == 3)
        #expect(!literal.isEmpty)
        #expect(ByteString([UInt8]()).isEmpty)
        #expect(ByteString([0xFF]) != ByteString("\\xFF"))
    }

    @Test("hexEscape writes upper-case hex", arguments: [(0x00, "\\x00"), (0x0A, "\\x0A"), (0xAB, "\\xAB"), (0xFF, "\\xFF")] as [(UInt8, String)])
    func hexEscape(_ byte: UInt8, _ expected: String) {
        #expect(ByteString.hexEscape(byte) == expected)
    }
}

@Suite("Timestamp (RFC 3339)")
struct TimestampTests {
    @Test("renders UTC with microseconds", arguments: [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1_000, "1970-01-01T00:00:00.000001Z"),
        (999, "1970-01-01T00:00:00.000000Z"),
        (1_700_000_000_123_456_789, "2023-11-14T22:13:20.123456Z"),
        (951_782_400_000_000_000, "2000-02-29T00:00:00.000000Z"),
        (951_868_800_000_000_000, "2000-03-01T00:00:00.000000Z"),
        (1_709_251_199_999_999_000, "2024-02-29T23:59:59.999999Z"),
        (4_102_444_800_000_000_000, "2100-01-01T00:00:00.000000Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (-1_000_000_000, "1969-12-31T23:59:59.000000Z"),
        (-86_400_000_000_000, "1969-12-31T00:00:00.000000Z"),
        (-2_208_988_800_000_000_000, "1900-01-01T00:00:00.000000Z"),
    ] as [(Int64, String)])
    func rfc3339(_ nanoseconds: Int64, _ expected: String) {
        let time = Timestamp(nanoseconds: nanoseconds)
        #expect(time.rfc3339 == expected)
        var bytes: [UInt8] = [0x3E]
        time.appendRFC3339(to: &bytes)
        #expect(bytes == [0x3E] + Array(expected.utf8))
    }

    @Test("seconds rounds towards the past", arguments: [
        (0, 0), (999_999_999, 0), (1_000_000_000, 1), (-1, -1), (-1_000_000_000, -1), (-1_000_000_001, -2),
    ] as [(Int64, Int64)])
    func seconds(_ nanoseconds: Int64, _ expected: Int64) {
        #expect(Timestamp(nanoseconds: nanoseconds).seconds == expected)
    }

    @Test("seconds + nanoseconds initialiser, and ordering")
    func initAndOrder() {
        #expect(Timestamp(seconds: 2, nanoseconds: 5).nanoseconds == 2_000_000_005)
        #expect(Timestamp(nanoseconds: -5) < Timestamp(nanoseconds: 0))
        #expect(Timestamp(seconds: 1, nanoseconds: 0) > Timestamp(seconds: 0, nanoseconds: 999_999_999))
    }
}

@Suite("Secrets")
struct SecretsTests {
    @Test("redact replaces exactly the secret range", arguments: [
        ("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n", 11..<31, "AUTH PLAIN [REDACTED]\r\n"),
        ("YWxpY2U=\r\n", 0..<8, "[REDACTED]\r\n"),
        ("abc", 3..<3, "abc[REDACTED]"),
        ("abc", 0..<3, "[REDACTED]"),
    ] as [(String, Range<Int>, String)])
    func redact(_ raw: String, _ secret: Range<Int>, _ expected: String) {
        let out = Array(raw.utf8).withUnsafeBytes { Secrets.redact($0, secret: secret) }
        #expect(out == Array(expected.utf8))
    }

    @Test("the placeholder bytes spell the placeholder")
    func placeholder() {
        #expect(Secrets.placeholderBytes == Array(Secrets.placeholder.utf8))
        #expect(Secrets.placeholder == "[REDACTED]")
    }
}

@Suite("Names and labels")
struct NameTests {
    @Test("LineFlags names come in a fixed order")
    func flagNames() {
        let all: LineFlags = [.mixedCodes, .malformed, .unsolicited, .notAReply, .missingSeparator, .unterminated, .overLength, .bareLF]
        #expect(all.names == ["bare_lf", "over_length", "unterminated", "no_space_after_code", "not_a_reply", "unsolicited", "malformed", "mixed_codes"])
        #expect(LineFlags().names.isEmpty)
        #expect(LineFlags.bareLF.union(.malformed).names == ["bare_lf", "malformed"])
    }

    @Test("every flag is a distinct bit")
    func flagBits() {
        let flags: [LineFlags] = [.bareLF, .overLength, .unterminated, .missingSeparator, .notAReply, .unsolicited, .malformed, .mixedCodes]
        #expect(Set(flags.map(\.rawValue)).count == flags.count)
        #expect(flags.allSatisfy { $0.rawValue.nonzeroBitCount == 1 })
    }

    @Test("reply context labels")
    func contextLabels() {
        #expect(ReplyContext.greeting.label == "greeting")
        #expect(ReplyContext.command(.ehlo).label == "EHLO")
        #expect(ReplyContext.command(.unknown("xclient")).label == "xclient")
        #expect(ReplyContext.message.label == "message")
        #expect(ReplyContext.authResponse.label == "auth")
        #expect(ReplyContext.none.label == "")
    }

    @Test("side, transfer and end-reason names")
    func names() {
        #expect(Side.client.name == "client")
        #expect(Side.server.name == "server")
        #expect(MessageTransfer.data.name == "DATA")
        #expect(MessageTransfer.bdat.name == "BDAT")
        let reasons: [SessionEndReason] = [.closed(by: .client), .closed(by: .server), .reset(by: .client), .reset(by: .server), .captureEnded, .idle, .fileDamaged, .replaced]
        #expect(reasons.map { "\($0.name)" } == ["closed_by_client", "closed_by_server", "reset_by_client", "reset_by_server", "capture_ended", "idle_timeout", "file_damaged", "replaced"])
        #expect("\(SessionEndReason.reset(by: .server).phrase)" == "connection reset by the server")
        #expect(Set(reasons.map { "\($0.phrase)" }).count == reasons.count)
    }
}
