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
    /// The largest message file (`message-file`) smtptape reads beside a scenario.
    public static let messageFileLimit = 1 << 30

    /// The format version the file declared (`version: 1`).
    public var version: Int
    /// A short name (transcripts name a scenario's sessions by it).
    public var name: String
    /// What the scenario tests, for people.
    public var description: String?
    /// Free labels.
    public var tags: [String]
    /// Where the scenario came from.
    public var origin: Origin?
    /// A remark that survives rewriting.
    public var note: String?
    /// The SMTP sessions, in order.
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
        /// The capture's file name (never a path).
        public var capture: String?
        /// The capture file's SHA-256, lower-case hex.
        public var sha256: String?
        /// `CLIENT -> SERVER`.
        public var connection: String?
        /// The session's number in the extraction it came from.
        public var session: Int?
        /// For recordings: the upstream server the proxy talked to.
        public var proxy: String?
        /// RFC 3339 UTC.
        public var start: String?
        /// RFC 3339 UTC.
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
        /// A name for the session (transcripts show it).
        public var name: String?
        /// A remark that survives rewriting.
        public var note: String?
        /// TLS from the first byte (SMTPS).
        public var implicitTLS: Bool
        /// What could not be recorded (encrypted after STARTTLS, bytes missing from the capture).
        public var incomplete: String?
        /// The server's opening reply (`220`, or `421`/`554` to refuse the session, RFC 5321 3.1).
        public var greeting: Reply
        /// Who sent the greeting (`greeting-by`): the server, or a recording proxy that could not
        /// reach it and refused the session itself (`421`).
        public var greetingBy: ReplySource
        /// Seconds the server waits on purpose before the greeting (`greeting-delay`): always
        /// honoured, as ``Step/delay`` is.
        public var greetingDelay: Double?
        /// Seconds the recorded server took before its greeting (`recorded-greeting-delay`, written
        /// by `extract`): honoured only when a replay is asked to keep recorded timing, as
        /// ``Step/recordedDelay`` is.
        public var recordedGreetingDelay: Double?
        /// The exchanges after the greeting, in order.
        public var steps: [Step]
        /// How the session ends (the file may leave it out: ``inferredEnd``).
        public var end: Ending

        /// - Parameter end: how the session ends; by default as ``inferredEnd`` says.
        public init(name: String? = nil, note: String? = nil, implicitTLS: Bool = false, incomplete: String? = nil,
                    greeting: Reply, greetingBy: ReplySource = .server, greetingDelay: Double? = nil, recordedGreetingDelay: Double? = nil,
                    steps: [Step] = [], end: Ending? = nil) {
            self.name = name
            self.note = note
            self.implicitTLS = implicitTLS
            self.incomplete = incomplete
            self.greeting = greeting
            self.greetingBy = greetingBy
            self.greetingDelay = greetingDelay
            self.recordedGreetingDelay = recordedGreetingDelay
            self.steps = steps
            self.end = .quit
            self.end = end ?? inferredEnd
        }

        /// How the session ends when the file does not say: the client quits after a QUIT step
        /// that got a reply; the server closes after a fault (any ``Fault``, a `stall` at its idle
        /// timeout) or a `421` (RFC 5321 3.8); otherwise the client closes the connection.
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

    /// Who sent a reply: the server, or the recording proxy between client and server, which
    /// answers the client itself when the server fails it (connection refused, reset during DATA,
    /// no answer in time). Replay plays both alike; the difference is for people and tools
    /// reading the scenario.
    ///
    /// ```yaml
    /// - client: MAIL FROM:<alice@example.com>
    ///   reply: 451 4.4.1 upstream server not responding
    ///   reply-by: proxy
    /// ```
    public enum ReplySource: String, Hashable, Sendable, CaseIterable {
        /// The server (the default, not written).
        case server
        /// The recording proxy, in the server's place (`reply-by: proxy`, `greeting-by: proxy`).
        case proxy
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

    /// A server reply: its exact bytes on the wire, line endings included.
    public struct Reply: Hashable, Sendable, ExpressibleByStringLiteral {
        /// Every line of the reply, each with its line ending.
        public var bytes: [UInt8]

        /// A reply from its exact bytes.
        public init(bytes: [UInt8]) { self.bytes = bytes }

        /// From lines written without line endings (`"250-a\n250 b"`): each line gets CRLF.
        public init(_ text: String) {
            bytes = text.split(separator: "\n", omittingEmptySubsequences: false).flatMap { Array($0.utf8) + [0x0D, 0x0A] }
        }

        /// `"250 OK"`: as ``init(_:)``.
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
