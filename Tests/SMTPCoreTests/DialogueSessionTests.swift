import Testing
@testable import SMTPCore

/// Whole sessions: the plain path, PIPELINING, AUTH and TLS.
@Suite("SMTPDialogue sessions")
struct DialogueSessionTests {
    static let ehloReply = "250-mail.example.com\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 8BITMIME\r\n"

    @Test("a plain session: every command, reply, the message and the summary")
    func plainSession() throws {
        let message = "Subject: hi\r\n\r\n.dot line\r\nbody\r\n"
        let t = play([
            .server("220 mail.example.com ESMTP\r\n"),
            .client("EHLO client.example.com\r\n"),
            .server(ByteString(Self.ehloReply)),
            .client("MAIL FROM:<alice@example.com> SIZE=100\r\n"),
            .server("250 2.1.0 Ok\r\n"),
            .client("RCPT TO:<bob@example.com>\r\n"),
            .server("250 2.1.5 Ok\r\n"),
            .client("RCPT TO:<nobody@example.com>\r\n"),
            .server("550 5.1.1 <nobody@example.com>: Recipient address rejected\r\n"),
            .client("DATA\r\n"),
            .server("354 End data with <CR><LF>.<CR><LF>\r\n"),
            .clientBytes(DotStuffing.stuff(Array(message))),
            .server("250 2.0.0 Ok: queued as ABC\r\n"),
            .client("QUIT\r\n"),
            .server("221 2.0.0 Bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting",
            "C EHLO",
            "S 250 EHLO (4 lines)",
            "C MAIL",
            "S 250 MAIL",
            "C RCPT",
            "S 250 RCPT",
            "C RCPT",
            "S 550 RCPT",
            "C DATA",
            "S 354 DATA",
            "D1 DATA Subject: hi\\x0D\\x0A\\x0D\\x0A..dot line\\x0D\\x0Abody\\x0D\\x0A",
            "E1 DATA size=\(message.utf8.count) .\\x0D\\x0A",
            "S 250 message",
            "C QUIT",
            "S 221 QUIT",
        ])
        #expect(t.observer.message(1) == Array(message))

        // The multi-line EHLO reply arrives whole and reads as capabilities.
        let ehlo = try #require(t.observer.replies.first { $0.context == .command(.ehlo) })
        #expect(ehlo.raw == Array(Self.ehloReply))
        let lines = Self.ehloReply.split(separator: "\r\n").map { SMTPReplyLine(String($0)) }
        let capabilities = try #require(EHLOCapabilities(reply: SMTPReply(lines: lines)))
        #expect(capabilities.contains("PIPELINING"))
        #expect(capabilities.sizeLimit == 10_240_000)

        let summary = t.summary
        #expect(summary.senders.map(\.address) == ["alice@example.com"])
        #expect(summary.recipients.map(\.address) == ["bob@example.com", "nobody@example.com"])
        #expect(summary.recipients.map(\.replyCode) == [250, 550])
        #expect(summary.completedMessages == 1)
        #expect(summary.messageBytes == message.utf8.count)
        #expect(summary.messageReplyCodes == [250])
        #expect(summary.lastReplyCode == 221)
        #expect(summary.quitSent)
        #expect(summary.tls == nil)
        #expect(summary.authMechanism == nil)
        #expect(summary.gapBytes == 0)
        #expect(!t.dialogue.isEncrypted)
    }

    @Test("a command carries the time its line completed; a multi-line reply the time its first line did")
    func times() {
        let t = play([
            .server("220 hi\r\n"),      // 1000
            .client("NO"),              // 1001
            .client("OP\r\n"),          // 1002
            .server("250-a\r\n"),       // 1003
            .server("250 b\r\n"),       // 1004
        ])
        #expect(t.log == ["S 220 greeting", "C NOOP", "S 250 NOOP (2 lines)"])
        #expect(t.observer.times.map(\.seconds) == [1000, 1002, 1003])
    }

    @Test("two transactions in one session number their messages 1 and 2")
    func twoMessages() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@x>\r\n"), .server("250 ok\r\n"),
            .client("RCPT TO:<b@y>\r\n"), .server("250 ok\r\n"),
            .client("DATA\r\n"), .server("354 go\r\n"),
            .client("one\r\n.\r\n"), .server("250 first\r\n"),
            .client("RSET\r\n"), .server("250 ok\r\n"),
            .client("MAIL FROM:<>\r\n"), .server("250 ok\r\n"),
            .client("RCPT TO:<c@y>\r\n"), .server("250 ok\r\n"),
            .client("DATA\r\n"), .server("354 go\r\n"),
            .client("second\r\n.\r\n"), .server("554 rejected\r\n"),
        ])
        #expect(t.observer.message(1) == Array("one\r\n"))
        #expect(t.observer.message(2) == Array("second\r\n"))
        #expect(t.observer.messageEnds.map(\.message) == [1, 2])
        #expect(t.summary.senders.map(\.address) == ["a@x", ""])
        #expect(t.summary.completedMessages == 2)
        #expect(t.summary.messageBytes == 5 + 8)
        #expect(t.summary.messageReplyCodes == [250, 554])
        #expect(t.observer.replyContexts.filter { $0 == .message }.count == 2)
    }

    @Test("DATA refused: the client stays in command mode")
    func dataRefused() {
        let t = play([
            .server("220 hi\r\n"),
            .client("DATA\r\n"), .server("503 5.5.1 need RCPT\r\n"),
            .client("QUIT\r\n"), .server("221 bye\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C DATA", "S 503 DATA", "C QUIT", "S 221 QUIT"])
        #expect(t.summary.completedMessages == 0)
    }

    // MARK: PIPELINING

    static let pipelinedClient = "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
    static let pipelinedReplies = "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n354 go ahead\r\n"

    static func pipelinedSession(serverChunk: Int) -> [Step] {
        [
            .server("220 hi\r\n"),
            .client("EHLO c\r\n"),
            .server("250-mail.example.com\r\n250 PIPELINING\r\n"),
            .client(ByteString(pipelinedClient)),
        ] + chunks(Array(pipelinedReplies), size: serverChunk).map(Step.serverBytes) + [
            .client("hello\r\n.\r\nQUIT\r\n"),
            .server("250 queued\r\n221 bye\r\n"),
        ]
    }

    @Test("PIPELINING: replies pair with MAIL, RCPT, RCPT, DATA in order, however the replies are segmented",
          arguments: [Int.max, 1, 2, 3, 7, 14])
    func pipelining(serverChunk: Int) {
        let t = play(Self.pipelinedSession(serverChunk: serverChunk))
        #expect(t.log == [
            "S 220 greeting",
            "C EHLO",
            "S 250 EHLO (2 lines)",
            "C MAIL", "C RCPT", "C RCPT", "C DATA",
            "S 250 MAIL", "S 250 RCPT", "S 550 RCPT", "S 354 DATA",
            "D1 DATA hello\\x0D\\x0A",
            "E1 DATA size=7 .\\x0D\\x0A",
            "C QUIT",
            "S 250 message", "S 221 QUIT",
        ])
        #expect(t.summary.recipients.map(\.replyCode) == [250, 550])
        #expect(t.summary.messageReplyCodes == [250])
        #expect(t.summary.lastReplyCode == 221)
    }

    @Test("PIPELINING with every command in its own reply segment and the DATA refused")
    func pipelinedDataRefused() {
        let t = play([
            .server("220 hi\r\n"),
            .client("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n"),
            .server("250 ok\r\n"), .server("550 no\r\n"), .server("554 no valid recipients\r\n"),
            .client("RSET\r\nQUIT\r\n"),
            .server("250 ok\r\n221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C MAIL", "C RCPT", "C DATA", "S 250 MAIL", "S 550 RCPT", "S 554 DATA",
            "C RSET", "C QUIT", "S 250 RSET", "S 221 QUIT",
        ])
        #expect(t.summary.completedMessages == 0)
    }

    @Test("without an expected greeting the first reply answers the first command")
    func noGreeting() {
        let t = play([.client("NOOP\r\n"), .server("250 ok\r\n")], expectGreeting: false)
        #expect(t.log == ["C NOOP", "S 250 NOOP"])
    }

    @Test("a capture that begins inside AUTH PLAIN, whose reply it cut: the first line is redacted")
    func midSessionCutAuthLine() {
        // The capture began inside `AUTH PLAIN <credentials>` and inside its 235: nothing says the
        // line was no credential, so it is redacted.
        let t = play([
            .server("on successful\r\n"), .client("UTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            .client("MAIL FROM:<a@b>\r\n"), .server("250 ok\r\n"),
        ], expectGreeting: false)
        #expect(Array(t.log.prefix(3)) == [
            "S - none [not_a_reply]", "A UTH PLAIN AGFsaWNlAHNlY3JldA== secret=UTH PLAIN AGFsaWNlAHNlY3JldA==", "C MAIL",
        ])
    }

    @Test("a mid-session capture whose client sends lines and a partial one, then ends: every byte is reported")
    func midSessionHeldLinesAtTheEnd() {
        // Each unknown line is held for a reply that never comes; the last, cut by the end of the
        // stream, too. The harness checks that the observer got every byte back.
        let t = play([.client("abc\r\n"), .client("def\r\n"), .client("partial")], expectGreeting: false)
        #expect(t.log == ["A abc secret=abc", "A def secret=def", "A partial secret=partial [unterminated]"])
    }

    @Test("a capture that begins inside AUTH: a line that is not base64, held for its reply, is a credential when the reply is 334, 235 or 535",
          arguments: [("334 UGFzc3dvcmQ6", true), ("235 2.7.0 ok", true), ("535 5.7.8 Authentication failed", true),
                      ("250 2.0.0 ok", false), ("500 5.5.2 unrecognised", false)])
    func midSessionHeldLineAndItsReply(reply: String, secret: Bool) {
        let t = play([.client("hunter2!\r\n"), .server(ByteString(reply + "\r\n"))], expectGreeting: false)
        #expect(t.log.first == (secret ? "A hunter2! secret=hunter2!" : "C hunter2!"), "\(t.log)")
    }

    @Test("stopsAtTLSRequest: the bytes after a STARTTLS line are not read; without it they are")
    func stopsAtTLSRequest() {
        let input = Array("EHLO c\r\nSTARTTLS\r\nRSET\r\n".utf8)
        for stops in [true, false] {
            var dialogue = SMTPDialogue()
            dialogue.stopsAtTLSRequest = stops
            let observer = RecordingObserver()
            _ = Array("220 hi\r\n".utf8).withUnsafeBytes { dialogue.receive($0, from: .server, time: Timestamp(nanoseconds: 0), observer: observer) }
            let read = input.withUnsafeBytes { dialogue.receive($0, from: .client, time: Timestamp(nanoseconds: 1), observer: observer) }
            #expect(read == (stops ? 18 : input.count))
            #expect(dialogue.awaitsTLSReply)
            #expect(observer.events.filter { if case .command = $0 { true } else { false } }.count == (stops ? 2 : 3))
        }
    }

    // MARK: AUTH

    @Test("AUTH PLAIN with an initial response: the response is a secret range of the command")
    func authPlainInitialResponse() throws {
        let t = play([
            .server("220 hi\r\n"),
            .client("EHLO c\r\n"), .server("250-x\r\n250 AUTH PLAIN LOGIN\r\n"),
            .client("AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n"),
            .server("235 2.7.0 Authentication successful\r\n"),
            .client("MAIL FROM:<alice@example.com>\r\n"), .server("250 ok\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C EHLO", "S 250 EHLO (2 lines)",
            "C AUTH secret=AGFsaWNlAHNlY3JldA==",
            "S 235 AUTH",
            "C MAIL", "S 250 MAIL",
        ])
        let auth = try #require(t.observer.events.compactMap { event -> ([UInt8], Range<Int>?)? in
            if case .command(let raw, .auth, _, let secret) = event { (raw, secret) } else { nil }
        }.first)
        let secret = try #require(auth.1)
        #expect(secret == 11..<31)
        #expect(auth.0.withUnsafeBytes { Secrets.redact($0, secret: secret) } == Array("AUTH PLAIN [REDACTED]\r\n"))
        #expect(t.summary.authMechanism == "PLAIN")
        #expect(t.summary.authReplyCode == 235)
        #expect(t.summary.senders.map(\.address) == ["alice@example.com"])
    }

    @Test("the initial response is secret whatever whitespace separates it from the mechanism",
          arguments: ["AUTH PLAIN AGFsaWNlAHNlY3JldA==", "AUTH PLAIN  AGFsaWNlAHNlY3JldA==", "AUTH PLAIN\tAGFsaWNlAHNlY3JldA==",
                      "AUTH  PLAIN AGFsaWNlAHNlY3JldA==", "AUTH\tPLAIN AGFsaWNlAHNlY3JldA=="])
    func authInitialResponseSeparators(_ line: String) {
        let t = play([.server("220 hi\r\n"), .client(ByteString(line + "\r\n")), .server("235 ok\r\n")])
        #expect(t.log == ["S 220 greeting", "C AUTH secret=AGFsaWNlAHNlY3JldA==", "S 235 AUTH"])
        #expect(t.summary.authMechanism == "PLAIN")
    }

    @Test("AUTH PLAIN = is an empty initial response, not a secret")
    func authPlainEmptyInitialResponse() {
        let t = play([.server("220 hi\r\n"), .client("AUTH PLAIN =\r\n"), .server("535 no\r\n")])
        #expect(t.log == ["S 220 greeting", "C AUTH", "S 535 AUTH"])
        #expect(t.summary.authReplyCode == 535)
    }

    @Test("AUTH LOGIN: both responses after 334 challenges are secret, then commands resume")
    func authLogin() {
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH LOGIN\r\n"),
            .server("334 VXNlcm5hbWU6\r\n"),
            .client("YWxpY2U=\r\n"),
            .server("334 UGFzc3dvcmQ6\r\n"),
            .client("c2VjcmV0\r\n"),
            .server("235 2.7.0 ok\r\n"),
            .client("MAIL FROM:<alice@example.com>\r\n"),
            .server("250 ok\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting",
            "C AUTH",
            "S 334 AUTH",
            "A YWxpY2U= secret=YWxpY2U=",
            "S 334 auth",
            "A c2VjcmV0 secret=c2VjcmV0",
            "S 235 auth",
            "C MAIL",
            "S 250 MAIL",
        ])
        #expect(t.observer.authResponses.map(\.secret) == [0..<8, 0..<8])
        #expect(t.summary.authMechanism == "LOGIN")
        #expect(t.summary.authReplyCode == 235)
        #expect(t.summary.senders.map(\.address) == ["alice@example.com"])
    }

    @Test("AUTH PLAIN without initial response: the response after an empty 334 is secret")
    func authPlainChallenge() {
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH PLAIN\r\n"), .server("334 \r\n"),
            .client("AGFsaWNlAHNlY3JldA==\r\n"), .server("535 5.7.8 bad credentials\r\n"),
            .client("QUIT\r\n"), .server("221 bye\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C AUTH", "S 334 AUTH", "A AGFsaWNlAHNlY3JldA== secret=AGFsaWNlAHNlY3JldA==", "S 535 auth",
            "C QUIT", "S 221 QUIT",
        ])
        #expect(t.summary.authReplyCode == 535)
    }

    @Test("AUTH cancelled with *: the * is not secret, and commands resume")
    func authCancelled() {
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH LOGIN\r\n"), .server("334 VXNlcm5hbWU6\r\n"),
            .client("*\r\n"), .server("501 5.7.0 Authentication cancelled\r\n"),
            .client("QUIT\r\n"), .server("221 bye\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C AUTH", "S 334 AUTH", "A *", "S 501 auth", "C QUIT", "S 221 QUIT"])
        #expect(t.observer.authResponses.map(\.secret) == [nil])
        #expect(t.summary.authReplyCode == 501)
        #expect(t.summary.quitSent)
    }

    @Test("an AUTH response that arrives before its 334 is still a secret response")
    func authResponseBeforeChallenge() {
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH LOGIN\r\nYWxpY2U=\r\n"),
            .server("334 VXNlcm5hbWU6\r\n"),
            .client("c2VjcmV0\r\n"),
            .server("334 UGFzc3dvcmQ6\r\n235 ok\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C AUTH", "A YWxpY2U= secret=YWxpY2U=", "S 334 AUTH", "A c2VjcmV0 secret=c2VjcmV0",
            "S 334 auth", "S 235 auth",
        ])
        #expect(t.summary.authReplyCode == 235)
    }

    @Test("AUTH rejected outright: the next line is a command, not a response")
    func authRejected() {
        let t = play([
            .server("220 hi\r\n"),
            .client("AUTH GSSAPI\r\n"), .server("504 5.5.4 Unrecognized authentication type\r\n"),
            .client("HELP\r\n"), .server("214 see RFC 5321\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C AUTH", "S 504 AUTH", "C HELP", "S 214 HELP"])
        #expect(t.summary.authMechanism == "GSSAPI")
        #expect(t.summary.authReplyCode == 504)
    }

    // MARK: TLS

    static let clientHello: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00]
    static let serverHello: [UInt8] = [0x16, 0x03, 0x03, 0x00, 0x04, 0x02, 0x00, 0x00, 0x00, 0x0D, 0x0A]

    @Test("STARTTLS accepted: TLS starts after the 220, and everything after is only counted")
    func startTLSAccepted() {
        let t = play([
            .server("220 hi\r\n"),
            .client("EHLO c\r\n"), .server("250-x\r\n250 STARTTLS\r\n"),
            .client("STARTTLS\r\n"),
            .server("220 2.0.0 Ready to start TLS\r\n"),
            .clientBytes(Self.clientHello),
            .serverBytes(Self.serverHello),
            .client("EHLO c\r\n"),   // would be encrypted on the wire; must not be parsed
            .server("250 ok\r\n"),
        ])
        #expect(t.log == [
            "S 220 greeting", "C EHLO", "S 250 EHLO (2 lines)", "C STARTTLS", "S 220 STARTTLS",
            "TLS startTLS",
            "X client \(Self.clientHello.count)", "X server \(Self.serverHello.count)",
            "X client 8", "X server 8",
        ])
        #expect(t.summary.tls == .startTLS)
        #expect(t.summary.encryptedClient == Self.clientHello.count + 8)
        #expect(t.summary.encryptedServer == Self.serverHello.count + 8)
        #expect(t.summary.encryptedBytes == (Self.clientHello.count + 8, Self.serverHello.count + 8))
        #expect(t.dialogue.isEncrypted)
    }

    @Test("STARTTLS accepted with the TLS bytes in the same segment as the 220")
    func startTLSSameSegment() {
        let t = play([
            .server("220 hi\r\n"),
            .client("STARTTLS\r\n"),
            .serverBytes(Array("220 go ahead\r\n") + Self.serverHello),
            .clientBytes(Self.clientHello),
        ])
        #expect(t.log == ["S 220 greeting", "C STARTTLS", "S 220 STARTTLS", "TLS startTLS",
                          "X server \(Self.serverHello.count)", "X client \(Self.clientHello.count)"])
    }

    @Test("STARTTLS refused with 454: the session stays in plaintext")
    func startTLSRefused() {
        let t = play([
            .server("220 hi\r\n"),
            .client("STARTTLS\r\n"),
            .server("454 4.7.0 TLS not available due to temporary reason\r\n"),
            .client("MAIL FROM:<a@b>\r\n"),
            .server("250 ok\r\n"),
        ])
        #expect(t.log == ["S 220 greeting", "C STARTTLS", "S 454 STARTTLS", "C MAIL", "S 250 MAIL"])
        #expect(t.summary.tls == nil)
        #expect(t.summary.senders.map(\.address) == ["a@b"])
        #expect(!t.dialogue.isEncrypted)
    }

    @Test("STARTTLS accepted with a 2xx other than 220 starts TLS too")
    func startTLSAcceptedWith250() {
        let t = play([
            .server("220 hi\r\n"),
            .client("STARTTLS\r\n"),
            .server("250 2.0.0 go ahead\r\n"),
            .serverBytes(Self.serverHello),
            .clientBytes(Self.clientHello),
        ])
        #expect(t.log == ["S 220 greeting", "C STARTTLS", "S 250 STARTTLS", "TLS startTLS",
                          "X server \(Self.serverHello.count)", "X client \(Self.clientHello.count)"])
    }

    @Test("STARTTLS whose 220 was not captured: a TLS record from the client starts TLS")
    func startTLSWithoutReply() {
        let t = play([
            .server("220 hi\r\n"),
            .client("STARTTLS\r\n"),
            .clientBytes(Self.clientHello),
        ])
        #expect(t.log == ["S 220 greeting", "C STARTTLS", "TLS startTLS", "X client \(Self.clientHello.count)"])
        #expect(t.summary.tls == .startTLS)
    }

    @Test("implicit TLS: a client that opens with a TLS record is never parsed")
    func implicitTLS() {
        let t = play([
            .clientBytes(Self.clientHello),
            .serverBytes(Self.serverHello),
            .client("QUIT\r\n"),
        ])
        #expect(t.log == ["TLS implicit", "X client \(Self.clientHello.count)", "X server \(Self.serverHello.count)", "X client 6"])
        #expect(t.summary.tls == .implicit)
        #expect(t.observer.tlsModes == [.implicit])
        #expect(t.summary.senders.isEmpty)
    }

    @Test("bytes that only look a little like TLS are plaintext", arguments: [
        [0x16, 0x03, 0x05, 0x0D, 0x0A] as [UInt8],
        [0x16, 0x02, 0x01, 0x0D, 0x0A],
        [0x17, 0x03, 0x01, 0x0D, 0x0A],
    ])
    func notTLS(_ bytes: [UInt8]) {
        let t = play([.server("220 hi\r\n"), .clientBytes(bytes)])
        #expect(t.summary.tls == nil)
        #expect(t.observer.commands.count == 1)
    }
}
