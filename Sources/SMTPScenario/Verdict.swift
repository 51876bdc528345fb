import SMTPCore

/// What became of one replayed session: each step's outcome, the messages the client sent, and
/// what the client did that SMTP frowns on.
public struct Verdict: Sendable, Hashable {
    /// How one step (or one line the script did not hold) went.
    public enum Status: String, Sendable, Hashable {
        /// The client sent what the step expects (after no failed attempt).
        case passed
        /// The client sent something else (the step keeps every attempt), or the message differed.
        case mismatched
        /// The client never got to this step.
        case missing
        /// The client sent a line the script does not hold (past its end, or, with `--lenient`,
        /// between its steps: then it does not fail the session).
        case unexpected
        /// The session was cut short by the server shutting down (SIGINT, SIGTERM).
        case interrupted
    }

    /// One step's outcome.
    public struct StepResult: Sendable, Hashable {
        /// 1-based step number in the scenario session; `nil` for a line the script does not hold.
        public var step: Int?
        public var status: Status
        /// What the step expects, as the scenario writes it (secrets as the placeholder).
        public var expected: String?
        /// What the client sent last for this step (secrets redacted unless shown).
        public var actual: String?
        /// For a mismatch: the step that would have matched what the client sent (same verb first,
        /// then the smallest edit distance), and its line.
        public var closest: Closest?
        /// Every line the client tried for this step, in order.
        public var attempts: [String]
        /// Passes the session in spite of its status (`unexpected` lines under `--lenient`).
        public var tolerated: Bool

        public init(step: Int?, status: Status, expected: String? = nil, actual: String? = nil,
                    closest: Closest? = nil, attempts: [String] = [], tolerated: Bool = false) {
            self.step = step
            self.status = status
            self.expected = expected
            self.actual = actual
            self.closest = closest
            self.attempts = attempts
            self.tolerated = tolerated
        }
    }

    /// The step nearest to what a client sent.
    public struct Closest: Sendable, Hashable {
        public var step: Int
        public var expected: String
    }

    /// A message the client sent: its envelope and content.
    public struct ReceivedMessage: Sendable, Hashable {
        public var mailFrom: String?
        public var rcptTo: [String]
        /// The content (dot-unstuffed), as far as the server kept it.
        public var content: [UInt8]
        public var size: Int
        public var transfer: MessageTransfer
        /// The reply the server gave it.
        public var replyCode: Int?
    }

    /// 1-based number of this session in the run.
    public var session: Int
    /// When the session began (RFC 3339 UTC, microseconds).
    public var time: String
    /// The client's address (`HOST:PORT`).
    public var client: String
    public var scenario: String
    /// 1-based number of the scenario session played.
    public var scenarioSession: Int
    public var steps: [StepResult]
    public var messages: [ReceivedMessage]
    /// Client conformance notes and what the server did about the unexpected (dropped plaintext
    /// after STARTTLS, an idle timeout).
    public var notes: [String]

    public init(session: Int, time: String, client: String, scenario: String, scenarioSession: Int,
                steps: [StepResult], messages: [ReceivedMessage], notes: [String]) {
        self.session = session
        self.time = time
        self.client = client
        self.scenario = scenario
        self.scenarioSession = scenarioSession
        self.steps = steps
        self.messages = messages
        self.notes = notes
    }

    /// Whether every step passed (tolerated lines aside).
    public var passed: Bool {
        steps.allSatisfy { $0.status == .passed || $0.tolerated }
    }

    /// The first step that failed, for a one-line reason.
    public var firstFailure: StepResult? {
        steps.first { $0.status != .passed && !$0.tolerated }
    }
}

/// Levenshtein distance over bytes, for "the closest step".
enum EditDistance {
    static func between(_ a: [UInt8], _ b: [UInt8]) -> Int {
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var previous = Array(0...b.count)
        var current = [Int](repeating: 0, count: b.count + 1)
        for (i, x) in a.enumerated() {
            current[0] = i + 1
            for (j, y) in b.enumerated() {
                current[j + 1] = Swift.min(previous[j + 1] + 1, current[j] + 1, previous[j] + (x == y ? 0 : 1))
            }
            swap(&previous, &current)
        }
        return previous[b.count]
    }
}
