import SMTPCore

extension Scenario {
    /// One exchange of a session: what the client is expected to send (the step's ``Kind``, which
    /// carries its own data) and how the server answers.
    ///
    /// ```yaml
    /// - client: MAIL FROM:<alice@example.com>
    ///   reply: 250 2.1.0 Ok
    /// ```
    ///
    /// ``reply`` is `nil` exactly when ``fault`` is one that sends no reply (``Fault/sendsReply``);
    /// ``ScenarioReader`` accepts no other combination.
    public struct Step: Hashable, Sendable {
        /// What the client sends in a step, with what is compared and how.
        public enum Kind: Hashable, Sendable {
            /// A command line (`C: MAIL FROM:<alice@example.com>`).
            case command(ClientLine)
            /// A client response inside an AUTH exchange, after a `334` challenge (RFC 4954 4).
            case auth(ClientLine)
            /// A message's content, after DATA's `354` (RFC 5321 4.1.1.4) or in BDAT chunks
            /// (RFC 3030).
            case message(Message)
            /// Nothing from the client: the server replies unprompted (`421 4.4.2 Timeout`).
            case unsolicited
        }

        /// What the client sends.
        public var kind: Kind
        /// The server's answer: for a message sent with DATA, the reply after the `.` line; via
        /// BDAT, the reply to the last chunk. `nil` only with a fault that sends no reply
        /// (`drop`, `stall`, `reset`).
        public var reply: Reply?
        /// Who sent ``reply`` (`reply-by`): the server, or a recording proxy answering in its
        /// place. Only a step with a reply has a source other than ``ReplySource/server``.
        public var replyBy: ReplySource
        /// Seconds the server waits on purpose before answering (`delay`): a slow server written
        /// by hand. Replay always honours it.
        public var delay: Double?
        /// Seconds the recorded server took to answer (`recorded-delay`, written by `extract`).
        /// Replay honours it only when asked to keep recorded timing (`--timing recorded`).
        public var recordedDelay: Double?
        /// How the server misbehaves instead of answering normally.
        public var fault: Fault?
        /// TLS begins after this step's reply (a STARTTLS accepted with `220`, RFC 3207). Only
        /// ``Kind/command(_:)`` steps start TLS.
        public var startsTLS: Bool
        /// A remark that survives rewriting.
        public var note: String?

        /// A step of any kind; the `command`, `auth`, `message` and `unsolicited` constructors
        /// are shorter for the common cases.
        public init(kind: Kind, reply: Reply?, replyBy: ReplySource = .server, delay: Double? = nil, recordedDelay: Double? = nil,
                    fault: Fault? = nil, startsTLS: Bool = false, note: String? = nil) {
            self.kind = kind
            self.reply = reply
            self.replyBy = replyBy
            self.delay = delay
            self.recordedDelay = recordedDelay
            self.fault = fault
            self.startsTLS = startsTLS
            self.note = note
        }

        /// A command step from its text, without line ending (CRLF is added):
        /// `Step.command("MAIL FROM:<a@b>", reply: "250 OK")`.
        public static func command(_ line: String, match: Match = .exact, pattern: String? = nil, reply: Reply?,
                                   delay: Double? = nil, recordedDelay: Double? = nil, fault: Fault? = nil, startsTLS: Bool = false,
                                   note: String? = nil) -> Step {
            Step(kind: .command(ClientLine(line, match: match, pattern: pattern)), reply: reply, delay: delay, recordedDelay: recordedDelay,
                 fault: fault, startsTLS: startsTLS, note: note)
        }

        /// An AUTH response step from its text, without line ending (CRLF is added):
        /// `Step.auth("[REDACTED]", reply: "235 2.7.0 Authentication successful")`.
        public static func auth(_ line: String, match: Match = .exact, pattern: String? = nil, reply: Reply?,
                                delay: Double? = nil, recordedDelay: Double? = nil, fault: Fault? = nil, note: String? = nil) -> Step {
            Step(kind: .auth(ClientLine(line, match: match, pattern: pattern)), reply: reply, delay: delay, recordedDelay: recordedDelay,
                 fault: fault, note: note)
        }

        /// A message step from text written as in a scenario file, lines broken by LF (each line
        /// ends in CRLF on the wire): `Step.message("Subject: hi\n\nHello\n", reply: "250 OK")`.
        public static func message(_ text: String, via: MessageTransfer = .data, match: MessageMatch = .normalized,
                                   pattern: String? = nil, reply: Reply?, delay: Double? = nil, recordedDelay: Double? = nil,
                                   fault: Fault? = nil, note: String? = nil) -> Step {
            Step(kind: .message(Message(text: text, via: via, match: match, pattern: pattern)), reply: reply, delay: delay,
                 recordedDelay: recordedDelay, fault: fault, note: note)
        }

        /// A reply the server sends unprompted, after `delay` seconds.
        public static func unsolicited(reply: Reply, delay: Double? = nil, recordedDelay: Double? = nil, fault: Fault? = nil,
                                       note: String? = nil) -> Step {
            Step(kind: .unsolicited, reply: reply, delay: delay, recordedDelay: recordedDelay, fault: fault, note: note)
        }

        /// The verb of a command step (`nil` for other kinds).
        public var verb: SMTPVerb? {
            guard case .command(let line) = kind else { return nil }
            return line.bytes.withUnsafeBytes { raw in
                let content = SMTPLine.content(raw)
                return SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<SMTPCommand.verbEnd(content)]))
            }
        }

        /// The client's line, for command and AUTH steps.
        public var clientLine: ClientLine? {
            switch kind {
            case .command(let line), .auth(let line): line
            case .message, .unsolicited: nil
            }
        }

        /// The message, for message steps.
        public var message: Message? {
            if case .message(let message) = kind { return message }
            return nil
        }

        /// Whether nothing can follow this step in its session: a fault, or a QUIT that got its reply.
        public var endsSession: Bool {
            fault != nil || (verb == .quit && reply != nil)
        }
    }

    /// A line the client sends (a command, or a response inside an AUTH exchange), and how the
    /// line that arrives is compared with it.
    public struct ClientLine: Hashable, Sendable {
        /// The line's exact bytes, line ending included (CRLF, or a bare LF as recorded).
        public var bytes: [UInt8]
        /// How the client's line is compared.
        public var match: Match
        /// For ``Match/wildcard`` and ``Match/regex``: the pattern, when ``bytes`` holds the line
        /// as recorded (so that transcripts show it). Without it, the line itself is the pattern.
        public var pattern: String?

        /// A line from its exact bytes, line ending included.
        public init(bytes: [UInt8], match: Match = .exact, pattern: String? = nil) {
            self.bytes = bytes
            self.match = match
            self.pattern = pattern
        }

        /// A line from its text, without line ending: CRLF is added.
        public init(_ text: String, match: Match = .exact, pattern: String? = nil) {
            self.init(bytes: Array(text.utf8) + [0x0D, 0x0A], match: match, pattern: pattern)
        }

        /// The line without its line ending.
        public var content: [UInt8] { SMTPLine.content(bytes) }
    }

    /// A message the client sends, after DATA's `354` or as BDAT chunks, and how the message that
    /// arrives is compared with it.
    public struct Message: Hashable, Sendable {
        /// The content, dot-unstuffed (RFC 5321 4.5.2): what the client means to send, without
        /// the DATA terminator or BDAT framing.
        public var content: [UInt8]
        /// How the message travels.
        public var via: MessageTransfer
        /// BDAT chunk sizes as recorded (not compared: they change with the message).
        public var chunks: [Int]
        /// The replies to the BDAT chunks before the last, in order (`250 2.0.0 OK` for any not given).
        public var chunkReplies: [Reply]
        /// How the message that arrives is compared.
        public var match: MessageMatch
        /// For ``MessageMatch/wildcard`` and ``MessageMatch/regex``: the pattern, written like
        /// `message` text (lines broken by LF), when ``content`` holds the message as recorded.
        /// Without it, the content itself is the pattern.
        public var pattern: String?
        /// The name of the file beside the scenario that holds ``content`` (`message-file`),
        /// for a message too large to write inline; `nil` for a message written in the scenario.
        ///
        /// The reader loads the file into ``content``. The writer writes only the name, never the
        /// file: whoever sets a name writes the file (``Scenario/placingLargeMessages(baseName:threshold:)``
        /// returns the bytes to write).
        public var file: String?

        /// A message from its exact content (dot-unstuffed, CRLF line endings as sent).
        public init(content: [UInt8], via: MessageTransfer = .data, chunks: [Int] = [], chunkReplies: [Reply] = [],
                    match: MessageMatch = .normalized, pattern: String? = nil, file: String? = nil) {
            self.content = content
            self.via = via
            self.chunks = chunks
            self.chunkReplies = chunkReplies
            self.match = match
            self.pattern = pattern
            self.file = file
        }

        /// A message from text whose lines are broken by LF, as in a scenario file: each LF not
        /// already preceded by CR becomes CRLF.
        public init(text: String, via: MessageTransfer = .data, chunks: [Int] = [], chunkReplies: [Reply] = [],
                    match: MessageMatch = .normalized, pattern: String? = nil) {
            var bytes: [UInt8] = []
            for byte in text.utf8 {
                if byte == 0x0A, bytes.last != 0x0D { bytes.append(0x0D) }
                bytes.append(byte)
            }
            self.init(content: bytes, via: via, chunks: chunks, chunkReplies: chunkReplies, match: match, pattern: pattern)
        }
    }

    /// How a client line (command or AUTH response) is compared.
    public enum Match: String, Hashable, Sendable, CaseIterable {
        /// The line as written; a command's verb without regard to case (`mail from:` equals
        /// `MAIL FROM:`). The secret placeholder stands for any credentials.
        case exact
        /// `*` matches any run of bytes and `?` one byte; a command's verb without regard to case.
        case wildcard
        /// A regular expression (Swift `Regex` syntax) that must match the whole line, without
        /// its line ending.
        case regex
        /// Any line.
        case any
    }

    /// How a message is compared. The YAML key is `match`, as for client lines; left out, it is
    /// ``normalized``.
    public enum MessageMatch: String, Hashable, Sendable, CaseIterable {
        /// The default: byte for byte, except the values of the `Date:` and `Message-ID:` headers
        /// and MIME boundary strings, which change each time a client sends the same message.
        /// Not written in files.
        case normalized
        /// Byte for byte (`match: exact`; files before it wrote `compare: exact`).
        case exact
        /// `*` matches any run of characters (line breaks included) and `?` one, over the content
        /// with its CRLF line endings written as LF.
        case wildcard
        /// A regular expression (Swift `Regex` syntax) that must match the whole content, with its
        /// CRLF line endings written as LF (`(?s)` lets `.` cross lines).
        case regex
        /// Any message.
        case any

        /// The values a file may give `match` on a message step (``normalized`` is the default,
        /// and has no spelling).
        public static let written: [MessageMatch] = [.exact, .wildcard, .regex, .any]
    }

    /// A server misbehaving on purpose, instead of answering a step normally. No step may follow
    /// a fault in its session.
    public enum Fault: String, Hashable, Sendable, CaseIterable {
        /// Close the connection (FIN) without replying. On a message sent with DATA, once the
        /// content has arrived and before the `.` line: a disconnect during DATA.
        case drop
        /// Send the reply without its final line ending, then close.
        case partial
        /// Read on and never answer, until the client closes the connection or the server's
        /// idle timeout closes it.
        case stall
        /// Abort the connection with a TCP RST instead of replying (a crashed server, a
        /// middlebox). On a message sent with DATA, like ``drop``, before the `.` line.
        case reset

        /// Whether the server sends the step's reply (or part of it): only with ``partial``.
        public var sendsReply: Bool { self == .partial }
    }
}
