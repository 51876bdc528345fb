import SMTPCore

/// A stored SMTP dialogue: one or more sessions as the server sees them (see `Scenarios/FORMAT.md`).
///
/// Values are compared exactly: the bytes of every line, reply and message are kept, so that a
/// scenario read from a file and written again gives the same file.
public struct Scenario: Hashable, Sendable {
    /// The format version this build reads and writes.
    public static let currentVersion = 1
    /// The largest scenario file smtptape reads.
    public static let sizeLimit = 16 << 20

    public var version: Int
    public var name: String
    public var description: String?
    public var tags: [String]
    public var origin: Origin?
    public var note: String?
    public var sessions: [Session]

    public init(version: Int = Scenario.currentVersion, name: String, description: String? = nil, tags: [String] = [],
                origin: Origin? = nil, note: String? = nil, sessions: [Session]) {
        self.version = version
        self.name = name
        self.description = description
        self.tags = tags
        self.origin = origin
        self.note = note
        self.sessions = sessions
    }

    /// Where a scenario came from: a capture (by file name and SHA-256, never by path) or a proxy.
    public struct Origin: Hashable, Sendable {
        public var capture: String?
        public var sha256: String?
        /// `CLIENT -> SERVER`.
        public var connection: String?
        public var session: Int?
        public var proxy: String?
        /// RFC 3339 UTC.
        public var start: String?
        public var end: String?

        public init(capture: String? = nil, sha256: String? = nil, connection: String? = nil, session: Int? = nil,
                    proxy: String? = nil, start: String? = nil, end: String? = nil) {
            self.capture = capture
            self.sha256 = sha256
            self.connection = connection
            self.session = session
            self.proxy = proxy
            self.start = start
            self.end = end
        }

        var isEmpty: Bool { self == Origin() }
    }

    /// One SMTP session: greeting, steps, ending.
    public struct Session: Hashable, Sendable {
        public var name: String?
        public var note: String?
        /// TLS from the first byte (SMTPS).
        public var implicitTLS: Bool
        /// What could not be recorded (encrypted after STARTTLS, bytes missing from the capture).
        public var incomplete: String?
        public var greeting: Reply
        /// Seconds before the greeting.
        public var greetingDelay: Double?
        public var steps: [Step]
        public var end: Ending

        /// - Parameter end: how the session ends; by default as ``inferredEnd`` says.
        public init(name: String? = nil, note: String? = nil, implicitTLS: Bool = false, incomplete: String? = nil,
                    greeting: Reply, greetingDelay: Double? = nil, steps: [Step] = [], end: Ending? = nil) {
            self.name = name
            self.note = note
            self.implicitTLS = implicitTLS
            self.incomplete = incomplete
            self.greeting = greeting
            self.greetingDelay = greetingDelay
            self.steps = steps
            self.end = .quit
            self.end = end ?? inferredEnd
        }

        /// How the session ends when the file does not say: the client quits after a QUIT step
        /// that got a reply; the server closes after a fault or a `421` (RFC 5321 3.8); otherwise
        /// the client closes the connection.
        public var inferredEnd: Ending {
            guard let last = steps.last else {
                return greeting.code == 421 ? .serverClose : .clientClose
            }
            if last.fault != nil { return .serverClose }
            if last.verb == .quit, last.reply != nil { return .quit }
            if last.reply?.code == 421 { return .serverClose }
            return .clientClose
        }
    }

    /// How a session ends.
    public enum Ending: String, Hashable, Sendable, CaseIterable {
        /// The client sends QUIT, and the server closes after its reply.
        case quit
        /// The client closes the connection without QUIT.
        case clientClose = "client-close"
        /// The server closes the connection after its last reply.
        case serverClose = "server-close"
    }

    /// What the client sends and what the server answers.
    public struct Step: Hashable, Sendable {
        public enum Kind: Hashable, Sendable {
            /// A command line.
            case command
            /// A client response inside an AUTH exchange (RFC 4954).
            case auth
            /// A message's content, after DATA's 354 or in BDAT chunks.
            case message
            /// Nothing from the client: the server replies unprompted (`421 4.4.2 timeout`).
            case unsolicited
        }

        public var kind: Kind
        /// For commands and AUTH responses: the line's exact bytes, line ending included.
        /// For messages: the content, dot-unstuffed.
        public var client: [UInt8]
        public var match: Match
        /// For `wildcard` and `regex`: the pattern, when ``client`` holds the line as recorded.
        /// Without it, ``client`` is the pattern.
        public var pattern: String?
        /// For messages: compare byte for byte (by default Date, Message-ID and MIME boundary
        /// values are not compared).
        public var compareExactly: Bool
        public var via: MessageTransfer
        /// BDAT chunk sizes as recorded (not compared).
        public var chunks: [Int]
        /// Replies to the BDAT chunks before the last.
        public var chunkReplies: [Reply]
        /// `nil` only with ``Fault/drop``.
        public var reply: Reply?
        /// Seconds before the reply.
        public var delay: Double?
        public var fault: Fault?
        /// TLS begins after this step's reply (STARTTLS).
        public var startsTLS: Bool
        public var note: String?

        public init(kind: Kind, client: [UInt8], match: Match = .exact, pattern: String? = nil, compareExactly: Bool = false, via: MessageTransfer = .data,
                    chunks: [Int] = [], chunkReplies: [Reply] = [], reply: Reply?, delay: Double? = nil, fault: Fault? = nil,
                    startsTLS: Bool = false, note: String? = nil) {
            self.kind = kind
            self.client = client
            self.match = match
            self.pattern = pattern
            self.compareExactly = compareExactly
            self.via = via
            self.chunks = chunks
            self.chunkReplies = chunkReplies
            self.reply = reply
            self.delay = delay
            self.fault = fault
            self.startsTLS = startsTLS
            self.note = note
        }

        /// A command step from its text: `Step.command("MAIL FROM:<a@b>", reply: "250 OK")`.
        public static func command(_ line: String, match: Match = .exact, reply: String) -> Step {
            Step(kind: .command, client: Array(line.utf8) + [0x0D, 0x0A], match: match, reply: Reply(reply))
        }

        /// The verb of a command step.
        public var verb: SMTPVerb? {
            guard kind == .command else { return nil }
            return client.withUnsafeBytes { raw in
                let content = Self.lineContent(raw)
                return SMTPVerb(bytes: UnsafeRawBufferPointer(rebasing: content[0..<SMTPCommand.verbEnd(content)]))
            }
        }

        /// Whether nothing can follow this step in its session.
        public var endsSession: Bool {
            fault != nil || (verb == .quit && reply != nil)
        }

        static func lineContent(_ raw: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer { SMTPLine.content(raw) }
    }

    /// How a client line is compared.
    public enum Match: String, Hashable, Sendable, CaseIterable {
        case exact, wildcard, regex, any
    }

    /// A server misbehaving on purpose.
    public enum Fault: String, Hashable, Sendable, CaseIterable {
        /// Close the connection instead of replying.
        case drop
        /// Send the reply without its final line ending, then close.
        case partial
    }

    /// A server reply: its exact bytes on the wire, line endings included.
    public struct Reply: Hashable, Sendable, ExpressibleByStringLiteral {
        public var bytes: [UInt8]

        public init(bytes: [UInt8]) { self.bytes = bytes }

        /// From lines written without line endings (`"250-a\n250 b"`): each line gets CRLF.
        public init(_ text: String) {
            bytes = text.split(separator: "\n", omittingEmptySubsequences: false).flatMap { Array($0.utf8) + [0x0D, 0x0A] }
        }

        public init(stringLiteral value: String) { self.init(value) }

        /// The reply's lines as text, if every line ends in CRLF, is printable UTF-8, and the lines
        /// follow the reply grammar (``ReplyGrammar``); otherwise the reply is kept as bytes.
        public var textLines: [String]? {
            guard let lines = TextForm.lines(bytes) else { return nil }
            let substrings = lines.map { Substring($0) }
            return substrings.indices.allSatisfy { ReplyGrammar.problems(substrings, at: $0).isEmpty } ? lines : nil
        }

        /// The code of the last line (however its lines end).
        public var code: Int? {
            var end = bytes.count
            if end > 0, bytes[end - 1] == 0x0A { end -= 1 }
            let start = bytes[..<end].lastIndex(of: 0x0A).map { $0 + 1 } ?? 0
            return bytes[start..<end].withUnsafeBytes { SMTPReplyLine.code($0) }
        }
    }
}

/// When bytes can be shown as YAML text, and how they map back.
enum TextForm {
    /// Lines of printable UTF-8 (tabs allowed), each ending in CRLF; `nil` otherwise.
    static func lines(_ bytes: [UInt8]) -> [String]? {
        guard !bytes.isEmpty, bytes.count >= 2, bytes[bytes.count - 2] == 0x0D, bytes[bytes.count - 1] == 0x0A else { return nil }
        var lines: [String] = []
        var start = 0
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0D {
                guard index + 1 < bytes.count, bytes[index + 1] == 0x0A else { return nil }
                guard let line = printable(bytes[start..<index]) else { return nil }
                lines.append(line)
                index += 2
                start = index
                continue
            }
            if byte == 0x0A { return nil }
            index += 1
        }
        return lines
    }

    /// A message's content as text with LF line breaks, if it is printable UTF-8 with CRLF line
    /// endings throughout, ending in CRLF (or empty).
    static func message(_ bytes: [UInt8]) -> String? {
        if bytes.isEmpty { return "" }
        guard let lines = lines(bytes) else { return nil }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Text from YAML back to CRLF bytes.
    static func messageBytes(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        for byte in text.utf8 {
            if byte == 0x0A { out.append(0x0D) }
            out.append(byte)
        }
        return out
    }

    static func printable(_ bytes: ArraySlice<UInt8>) -> String? {
        for byte in bytes where byte < 0x20 && byte != 0x09 || byte == 0x7F { return nil }
        guard let text = String(validating: bytes, as: UTF8.self) else { return nil }
        // C1 controls, the BOM and line/paragraph separators do not belong in readable YAML.
        for scalar in text.unicodeScalars where (0x80...0x9F).contains(scalar.value) || [0xFEFF, 0x2028, 0x2029, 0x85].contains(scalar.value) {
            return nil
        }
        return text
    }
}

/// The grammar of reply lines written as text (RFC 5321 4.2): each line starts with the same
/// code (2xx to 5xx) followed by a space or `-`, or ends after it; every line but the last has `-`.
enum ReplyGrammar {
    /// What is wrong with line `index` of a reply (empty when nothing is).
    static func problems(_ lines: [Substring], at index: Int) -> [String] {
        let line = lines[index]
        let bytes = Array(line.utf8)
        let hasCode = bytes.count >= 3 && (0x32...0x35).contains(bytes[0]) && (0x30...0x39).contains(bytes[1]) && (0x30...0x39).contains(bytes[2])
            && (bytes.count == 3 || bytes[3] == 0x20 || bytes[3] == 0x2D)
        guard hasCode else {
            return ["reply line '\(line)' does not start with a three-digit code (2xx to 5xx) and a space or '-'"]
        }
        var problems: [String] = []
        let code = line.prefix(3)
        let firstCode = lines[0].prefix(3)
        if index > 0, code != firstCode {
            problems.append("reply line has a different code (\(code)) from the first line (\(firstCode))")
        }
        let continues = bytes.count > 3 && bytes[3] == 0x2D
        if index < lines.count - 1, !continues {
            problems.append("multi-line reply: every line but the last needs '-' after the code (a continuation)")
        } else if index == lines.count - 1, continues {
            problems.append("multi-line reply: the last line must have a space, not '-' (continuation), after the code")
        }
        return problems
    }
}
