import SMTPCore

/// A step's expectation prepared once: wildcard patterns and normalized messages computed, and
/// regular expressions compiled, so that replay compares each line the client sends without
/// compiling anything. ``CompiledSession`` holds one for each step of a session.
///
/// A line is compared as ``Scenario/Match`` says, a message as ``Scenario/MessageMatch`` says.
/// A step takes only what its kind expects: a command or AUTH step no message, a message step no
/// line, a step that is only a reply neither.
public struct StepMatcher: Sendable {
    enum Comparison: Sendable {
        /// The step expects nothing of this sort.
        case nothing
        case any
        /// The expected line with its verb folded (for commands); with placeholders, a NUL marks each.
        case line([UInt8], foldsVerb: Bool, placeholders: Bool)
        case lineWildcard([UInt8], foldsVerb: Bool)
        case regex(CompiledRegex)
        /// A message normalized by ``MessageNormalizer``.
        case normalized([UInt8])
        case bytes([UInt8])
        /// A glob over a message in its text form.
        case messageWildcard([UInt8])
    }

    let line: Comparison
    let message: Comparison

    /// Prepares `step`'s expectation.
    ///
    /// - Throws: ``ScenarioPatternError`` when a `regex` pattern is not a valid regular
    ///   expression (``ScenarioReader`` reports those, so a scenario it read always compiles).
    public init(_ step: Scenario.Step) throws(ScenarioPatternError) {
        switch step.kind {
        case .command(let clientLine):
            line = try Self.lineComparison(clientLine, foldsVerb: true)
            message = .nothing
        case .auth(let clientLine):
            // An AUTH response is base64 (or `*`), where case matters: no verb to fold.
            line = try Self.lineComparison(clientLine, foldsVerb: false)
            message = .nothing
        case .message(let expected):
            line = .nothing
            message = try Self.messageComparison(expected)
        case .unsolicited:
            line = .nothing
            message = .nothing
        }
    }

    static func lineComparison(_ clientLine: Scenario.ClientLine, foldsVerb: Bool) throws(ScenarioPatternError) -> Comparison {
        let expected = clientLine.pattern.map { Array($0.utf8) } ?? clientLine.content
        switch clientLine.match {
        case .any:
            return .any
        case .exact:
            let placeholders = Self.contains(expected, Secrets.placeholderBytes)
            let marked = placeholders ? Self.placeholderAsWildcard(expected) : expected
            return .line(foldsVerb ? Self.foldVerb(marked) : marked, foldsVerb: foldsVerb, placeholders: placeholders)
        case .wildcard:
            return .lineWildcard(foldsVerb ? Self.foldVerb(expected) : expected, foldsVerb: foldsVerb)
        case .regex:
            return .regex(try compile(String(decoding: expected, as: UTF8.self)))
        }
    }

    static func messageComparison(_ expected: Scenario.Message) throws(ScenarioPatternError) -> Comparison {
        switch expected.match {
        case .any:
            return .any
        case .normalized:
            return .normalized(MessageNormalizer.normalize(expected.content))
        case .exact:
            return .bytes(expected.content)
        case .wildcard:
            return .messageWildcard(expected.pattern.map { Array($0.utf8) } ?? Self.textForm(expected.content))
        case .regex:
            let source = expected.pattern ?? String(decoding: Self.textForm(expected.content), as: UTF8.self)
            return .regex(try compile(source))
        }
    }

    /// Compiles a `regex` pattern.
    static func compile(_ pattern: String) throws(ScenarioPatternError) -> CompiledRegex {
        do {
            return CompiledRegex(try Regex(pattern))
        } catch {
            throw ScenarioPatternError(pattern: pattern, message: "\(error)")
        }
    }

    /// Whether a client line (its bytes, with or without line ending) meets the step's
    /// expectation. Always `false` for a step that expects no line (a message, a reply alone).
    public func accepts(line raw: [UInt8]) -> Bool {
        let actual = SMTPLine.content(raw)
        switch line {
        case .nothing:
            return false
        case .any:
            return true
        case .line(let expected, let foldsVerb, let placeholders):
            let compared = foldsVerb ? Self.foldVerb(actual) : actual
            if placeholders { return Wildcard.matches(pattern: expected, compared, placeholderOnly: true) }
            return expected == compared
        case .lineWildcard(let expected, let foldsVerb):
            return Wildcard.matches(pattern: expected, foldsVerb ? Self.foldVerb(actual) : actual, placeholderOnly: false)
        case .regex(let regex):
            return regex.wholeMatches(String(decoding: actual, as: UTF8.self))
        case .normalized, .bytes, .messageWildcard:
            return false
        }
    }

    /// Whether a message (its content, dot-unstuffed) meets the step's expectation. Always
    /// `false` for a step that expects no message.
    public func accepts(message content: [UInt8]) -> Bool {
        switch message {
        case .nothing, .line, .lineWildcard:
            return false
        case .any:
            return true
        case .normalized(let expected):
            return MessageNormalizer.normalize(content) == expected
        case .bytes(let expected):
            return content == expected
        case .messageWildcard(let pattern):
            return Wildcard.matches(pattern: pattern, Self.textForm(content), placeholderOnly: false)
        case .regex(let regex):
            return regex.wholeMatches(String(decoding: Self.textForm(content), as: UTF8.self))
        }
    }

    /// Message content as patterns see it: each CRLF written as LF, as in `message` text.
    static func textForm(_ content: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(content.count)
        var index = 0
        while index < content.count {
            if content[index] == 0x0D, index + 1 < content.count, content[index + 1] == 0x0A {
                index += 1
                continue
            }
            out.append(content[index])
            index += 1
        }
        return out
    }

    /// The line with its verb (as ``SMTPCommand/verbEnd(_:)`` finds it) upper-cased.
    static func foldVerb(_ line: [UInt8]) -> [UInt8] {
        var bytes = line
        let end = line.withUnsafeBytes { SMTPCommand.verbEnd($0) }
        for index in 0..<end where (0x61...0x7A).contains(bytes[index]) { bytes[index] -= 0x20 }
        return bytes
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count else { return false }
        return (0...(haystack.count - needle.count)).contains { Array(haystack[$0..<($0 + needle.count)]) == needle }
    }

    /// Marks each placeholder with a NUL, which ``Wildcard`` takes as "one or more bytes".
    static func placeholderAsWildcard(_ line: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        let token = Secrets.placeholderBytes
        while index < line.count {
            if index + token.count <= line.count, Array(line[index..<(index + token.count)]) == token {
                out.append(0)
                index += token.count
            } else {
                out.append(line[index])
                index += 1
            }
        }
        return out
    }
}

/// A regular expression compiled once and then only matched against.
///
/// `Regex<AnyRegexOutput>` is not `Sendable` because its match results may hold any value; the
/// compiled expression itself is immutable. Matching here returns only whether the whole text
/// matched, so no result leaves the call. The expression is run once at creation, so that the
/// program it is lowered to on first use is built before the value is shared.
struct CompiledRegex: @unchecked Sendable {
    let regex: Regex<AnyRegexOutput>

    init(_ regex: Regex<AnyRegexOutput>) {
        self.regex = regex
        _ = try? regex.wholeMatch(in: "")
    }

    func wholeMatches(_ text: String) -> Bool {
        (try? regex.wholeMatch(in: text)) != nil
    }
}

/// A `regex` pattern that is not a valid regular expression.
public struct ScenarioPatternError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The pattern as written.
    public var pattern: String
    /// What the regular expression parser said.
    public var message: String
    /// The session's index in its scenario, when known.
    public var session: Int?
    /// The step's index in its session, when known.
    public var step: Int?

    /// An error for `pattern`; ``CompiledSession`` and ``Scenario/compiledSessions()`` fill in
    /// where it is.
    public init(pattern: String, message: String, session: Int? = nil, step: Int? = nil) {
        self.pattern = pattern
        self.message = message
        self.session = session
        self.step = step
    }

    /// `session 2 step 3 invalid regular expression '...': ...` (1-based).
    public var description: String {
        var place = ""
        if let session { place += "session \(session + 1) " }
        if let step { place += "step \(step + 1) " }
        return place + "invalid regular expression '\(pattern)': \(message)"
    }
}

/// A session ready to be played: its steps' expectations prepared once (``StepMatcher``), so
/// that replay compares what the client sends without compiling a pattern per line.
public struct CompiledSession: Sendable {
    /// The session as read.
    public let session: Scenario.Session
    /// One matcher per step: `matchers[i]` for `session.steps[i]`.
    public let matchers: [StepMatcher]
    /// What each step expects, as verdicts write it (`expected[i]` for `session.steps[i]`): made
    /// once here rather than for every connection that plays the session.
    public let expected: [String]

    /// - Throws: ``ScenarioPatternError`` (with ``ScenarioPatternError/step``) for the first
    ///   step whose `regex` pattern does not compile.
    public init(_ session: Scenario.Session) throws(ScenarioPatternError) {
        var matchers: [StepMatcher] = []
        matchers.reserveCapacity(session.steps.count)
        for (index, step) in session.steps.enumerated() {
            do {
                matchers.append(try StepMatcher(step))
            } catch {
                var located = error
                located.step = index
                throw located
            }
        }
        self.session = session
        self.matchers = matchers
        self.expected = session.steps.map(SessionPlayer.expected)
    }

    /// Whether `line` meets the expectation of step `step`.
    public func accepts(line: [UInt8], step: Int) -> Bool { matchers[step].accepts(line: line) }

    /// Whether `message` (dot-unstuffed content) meets the expectation of step `step`.
    public func accepts(message: [UInt8], step: Int) -> Bool { matchers[step].accepts(message: message) }
}

extension Scenario {
    /// Every session ready to be played (see ``CompiledSession``).
    ///
    /// - Throws: ``ScenarioPatternError`` naming the session and step of the first `regex`
    ///   pattern that does not compile.
    public func compiledSessions() throws(ScenarioPatternError) -> [CompiledSession] {
        var compiled: [CompiledSession] = []
        for (index, session) in sessions.enumerated() {
            do {
                compiled.append(try CompiledSession(session))
            } catch {
                var located = error
                located.session = index
                throw located
            }
        }
        return compiled
    }
}

/// Glob matching on bytes: `*` any run, `?` one byte (or, with `placeholderOnly`, only NUL marks
/// are special and stand for one or more bytes).
enum Wildcard {
    static func matches(pattern: [UInt8], _ text: [UInt8], placeholderOnly: Bool) -> Bool {
        var p = 0, t = 0
        var starP = -1, starT = 0
        while t < text.count {
            if p < pattern.count {
                let symbol = pattern[p]
                let isStar = placeholderOnly ? symbol == 0 : symbol == 0x2A
                if isStar {
                    starP = p
                    starT = placeholderOnly ? t + 1 : t
                    p += 1
                    if placeholderOnly { t += 1 }
                    continue
                }
                if (!placeholderOnly && symbol == 0x3F) || symbol == text[t] {
                    p += 1
                    t += 1
                    continue
                }
            }
            if starP >= 0 {
                p = starP + 1
                starT += 1
                t = starT
                continue
            }
            return false
        }
        while p < pattern.count, pattern[p] == (placeholderOnly ? 0 : 0x2A) {
            if placeholderOnly { return false }  // a placeholder needs at least one byte
            p += 1
        }
        return p == pattern.count
    }
}

/// Sets aside what changes each time a client sends the same message: the values of the Date
/// and Message-ID headers and MIME boundary strings.
enum MessageNormalizer {
    static func normalize(_ message: [UInt8]) -> [UInt8] {
        var lines = split(message)
        var boundaries: [[UInt8]] = []
        var inHeader = true
        var index = 0
        while index < lines.count {
            let line = lines[index]
            if inHeader, line.isEmpty || line == [0x0D] { inHeader = false }
            let lower = line.map { (0x41...0x5A).contains($0) ? $0 | 0x20 : $0 }
            if inHeader, hasPrefix(lower, "date:") || hasPrefix(lower, "message-id:") {
                let colon = line.firstIndex(of: 0x3A)!
                lines[index] = Array(line[...colon]) + Array(" *".utf8)
                // Folded continuation lines belong to the value.
                while index + 1 < lines.count, let first = lines[index + 1].first, first == 0x20 || first == 0x09 {
                    lines.remove(at: index + 1)
                }
            }
            if let range = find(lower, Array("boundary=".utf8)) {
                var value = Array(line[range.upperBound...])
                if value.first == 0x22, let close = value.dropFirst().firstIndex(of: 0x22) {
                    value = Array(value[1..<close])
                } else {
                    value = Array(value.prefix { $0 != 0x3B && $0 != 0x20 && $0 != 0x0D })
                }
                if !value.isEmpty { boundaries.append(value) }
            }
            index += 1
        }
        var joined: [UInt8] = lines.flatMap { line -> [UInt8] in line + [0x0A] }
        for boundary in boundaries {
            joined = replace(joined, boundary, with: Array("BOUNDARY".utf8))
        }
        return joined
    }

    static func split(_ bytes: [UInt8]) -> [[UInt8]] {
        bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map(Array.init)
    }

    static func hasPrefix(_ bytes: [UInt8], _ prefix: String) -> Bool {
        bytes.starts(with: Array(prefix.utf8))
    }

    static func find(_ haystack: [UInt8], _ needle: [UInt8]) -> Range<Int>? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where Array(haystack[start..<(start + needle.count)]) == needle {
            return start..<(start + needle.count)
        }
        return nil
    }

    static func replace(_ bytes: [UInt8], _ target: [UInt8], with replacement: [UInt8]) -> [UInt8] {
        guard !target.isEmpty else { return bytes }
        var out: [UInt8] = []
        var index = 0
        while index < bytes.count {
            if index + target.count <= bytes.count, Array(bytes[index..<(index + target.count)]) == target {
                out += replacement
                index += target.count
            } else {
                out.append(bytes[index])
                index += 1
            }
        }
        return out
    }
}
