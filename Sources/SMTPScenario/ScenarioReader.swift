import SMTPCore
import SMTPFiles
import Yams

/// A problem in a scenario file, at a line and column: `file:line:column: message`.
public struct ScenarioDiagnostic: Hashable, Sendable, CustomStringConvertible {
    /// The file as given (`stdin` for standard input).
    public var file: String
    /// 1-based.
    public var line: Int
    /// 1-based, in characters.
    public var column: Int
    /// What is wrong, in words a scenario author can act on.
    public var message: String

    /// `file:line:column: message`.
    public var description: String { "\(file):\(line):\(column): \(message)" }
}

/// The outcome of reading a scenario file.
public struct ScenarioReadResult: Sendable {
    /// The file as diagnostics name it (`stdin` for standard input).
    public var file: String
    /// The scenario, when the file has no problems.
    public var scenario: Scenario?
    /// Every problem found, in file order; empty when ``scenario`` is set.
    public var diagnostics: [ScenarioDiagnostic]
    /// Set when the file could not be read as a scenario at all (missing, too large, not text):
    /// nothing could be done with it (exit 2), as opposed to problems found in it (exit 1).
    public var unreadable: Bool
}

/// Reads scenario files, checking them as it goes.
///
/// Validation walks the YAML node tree, so every problem is reported at the line and column of
/// the node it concerns (a key, a value, a line inside a block), and reading goes on after a
/// problem to report all of them.
///
/// A message kept beside the scenario (`message-file: NAME`) is read from the *base folder*: the
/// scenario file's own folder when reading a file, or the folder given. Without one (standard
/// input, text parsed with no folder given) a `message-file` is a problem.
public enum ScenarioReader {
    /// Reads and checks the scenario file at `path` (`-` for standard input); message files are
    /// read from the scenario file's folder.
    public static func read(file path: String) -> ScenarioReadResult {
        read(file: path, baseFolder: FileBeside.folder(of: path))
    }

    /// Reads and checks the scenario file at `path` (`-` for standard input), reading message
    /// files from `baseFolder` (none when `nil`).
    public static func read(file path: String, baseFolder: String?) -> ScenarioReadResult {
        do {
            return read(try InputSource(path: path), baseFolder: baseFolder)
        } catch {
            return unreadable(path == "-" ? "stdin" : path, error.message)
        }
    }

    /// Reads a scenario from an input opened once (a file or a pipe), from the reader's position;
    /// message files are read from the input's folder (none for standard input).
    public static func read(_ input: InputSource) -> ScenarioReadResult {
        read(input, baseFolder: FileBeside.folder(of: input.path))
    }

    /// Reads a scenario from an input opened once, reading message files from `baseFolder` (none
    /// when `nil`).
    public static func read(_ input: InputSource, baseFolder: String?) -> ScenarioReadResult {
        let file = input.path == "-" ? "stdin" : input.path
        if let size = input.size, size > Scenario.sizeLimit {
            return unreadable(file, "the file is \(size) bytes; scenario files are limited to \(Scenario.sizeLimit) bytes (16 MiB)")
        }
        do {
            return parse(bytes: try input.readAll(limit: Scenario.sizeLimit), file: file, baseFolder: baseFolder)
        } catch {
            let message = error.message.hasPrefix("larger than") ? "scenario files are limited to \(Scenario.sizeLimit) bytes (16 MiB)" : error.message
            return unreadable(file, message)
        }
    }

    static func unreadable(_ file: String, _ message: String) -> ScenarioReadResult {
        ScenarioReadResult(file: file, scenario: nil, diagnostics: [ScenarioDiagnostic(file: file, line: 1, column: 1, message: message)], unreadable: true)
    }

    /// Reads and checks a scenario from its bytes (UTF-8, a byte-order mark allowed); `file`
    /// names it in diagnostics, and message files are read from `baseFolder` (none when `nil`).
    public static func parse(bytes input: [UInt8], file: String, baseFolder: String? = nil) -> ScenarioReadResult {
        // A UTF-8 byte-order mark, as some editors write, is not part of the text.
        let bytes = input.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(input.dropFirst(3)) : input
        if let nul = bytes.firstIndex(of: 0) {
            let (line, column) = position(of: nul, in: bytes)
            return ScenarioReadResult(file: file, scenario: nil, diagnostics: [ScenarioDiagnostic(file: file, line: line, column: column, message: "not a scenario: a NUL byte (binary data, not YAML text)")], unreadable: true)
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            let (line, column) = position(of: firstInvalidUTF8(bytes), in: bytes)
            return ScenarioReadResult(file: file, scenario: nil, diagnostics: [ScenarioDiagnostic(file: file, line: line, column: column, message: "not a scenario: not UTF-8 text")], unreadable: true)
        }
        return parse(text, file: file, baseFolder: baseFolder)
    }

    /// The offset of the first byte that is not part of valid UTF-8.
    static func firstInvalidUTF8(_ bytes: [UInt8]) -> Int {
        var index = 0
        while index < bytes.count {
            let lead = bytes[index]
            let length = lead < 0x80 ? 1 : (0xC2...0xDF).contains(lead) ? 2 : (0xE0...0xEF).contains(lead) ? 3 : (0xF0...0xF4).contains(lead) ? 4 : 0
            guard length > 0, index + length <= bytes.count,
                  String(validating: bytes[index..<(index + length)], as: UTF8.self) != nil else { return index }
            index += length
        }
        return bytes.count
    }

    static func position(of offset: Int, in bytes: [UInt8]) -> (Int, Int) {
        var line = 1, column = 1
        for byte in bytes[..<min(offset, bytes.count)] {
            if byte == 0x0A { line += 1; column = 1 } else if byte & 0xC0 != 0x80 { column += 1 }
        }
        return (line, column)
    }

    /// Reads and checks a scenario from its text; `file` names it in diagnostics, and message
    /// files are read from `baseFolder` (none when `nil`).
    public static func parse(_ text: String, file: String, baseFolder: String? = nil) -> ScenarioReadResult {
        var walker = Walker(file: file, text: text, baseFolder: baseFolder)
        let scenario = walker.document()
        let problems = walker.diagnostics.sorted { ($0.line, $0.column) < ($1.line, $1.column) }
        return ScenarioReadResult(file: file, scenario: problems.isEmpty ? scenario : nil, diagnostics: problems, unreadable: false)
    }
}

/// Walks the node tree, building the model and collecting diagnostics.
struct Walker {
    let file: String
    let lines: [Substring]
    /// Where `message-file` names are read from; `nil` when the scenario has no folder.
    let baseFolder: String?
    var diagnostics: [ScenarioDiagnostic] = []

    init(file: String, text: String, baseFolder: String? = nil) {
        self.file = file
        lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        self.text = text
        self.baseFolder = baseFolder
    }

    let text: String
    var textSpent = 0
    var nodesSpent = 0
    var overBudget = false

    mutating func report(_ node: Node?, _ message: String) {
        let mark = node?.mark
        diagnostics.append(ScenarioDiagnostic(file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, message: message))
    }

    mutating func report(line: Int, column: Int, _ message: String) {
        diagnostics.append(ScenarioDiagnostic(file: file, line: line, column: column, message: message))
    }

    // MARK: Document

    static let topKeys = ["version", "name", "description", "tags", "origin", "note", "sessions"]
    static let originKeys = ["capture", "sha256", "connection", "session", "proxy", "start", "end"]
    static let sessionKeys = ["name", "note", "tls", "incomplete", "greeting", "greeting-base64", "greeting-by", "greeting-delay", "recorded-greeting-delay", "steps", "end"]
    static let stepKinds = ["client", "client-base64", "auth", "auth-base64", "message", "message-base64", "message-file"]
    static let stepKeys = stepKinds + ["match", "pattern", "compare", "via", "chunks", "chunk-replies", "reply", "reply-base64", "reply-by", "delay", "recorded-delay", "fault", "tls", "note"]

    mutating func document() -> Scenario? {
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            yamlError(error)
            return nil
        } catch {
            report(nil, "YAML: \(error)")
            return nil
        }
        guard let root else {
            report(nil, "empty file: a scenario needs at least 'version', 'name' and 'sessions'")
            return nil
        }

        guard let pairs = mapping(root, keys: Self.topKeys, what: "a scenario") else { return nil }
        guard let versionNode = pairs["version"] else {
            report(root, "missing 'version' (this smtptape writes version \(Scenario.currentVersion))")
            return nil
        }
        guard let version = integer(versionNode, key: "version") else { return nil }
        if version > Scenario.currentVersion {
            report(versionNode, "version \(version) is newer than this smtptape knows (\(Scenario.currentVersion)); upgrade smtptape to read it")
            return nil
        }
        if version < 1 {
            report(versionNode, "'version' must be \(Scenario.currentVersion)")
            return nil
        }
        let name = required(pairs, "name", in: root).flatMap { string($0, key: "name") }
        let description = pairs["description"].flatMap { string($0, key: "description") }
        let note = pairs["note"].flatMap { string($0, key: "note") }
        var tags: [String] = []
        if let tagsNode = pairs["tags"], let items = sequence(tagsNode, key: "tags") {
            tags = items.compactMap { string($0, key: "tags") }
        }
        let origin = pairs["origin"].flatMap { self.origin($0) }
        var sessions: [Scenario.Session] = []
        if let sessionsNode = required(pairs, "sessions", in: root), let items = sequence(sessionsNode, key: "sessions") {
            if items.isEmpty { report(sessionsNode, "'sessions' must hold at least one session") }
            sessions = items.compactMap { session($0) }
        }
        guard let name else { return nil }
        return Scenario(version: version, name: name, description: description, tags: tags, origin: origin, note: note, sessions: sessions)
    }

    mutating func yamlError(_ error: YamlError) {
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _), .composer(let context, let problem, let mark, _):
            var message = "YAML: " + problem
            if let context { message += " (\(context.text))" }
            report(line: mark.line, column: mark.column, message)
        case .reader(let problem, let offset, _, _):
            let (line, column) = offset.map { ScenarioReader.position(of: $0, in: Array(text.utf8)) } ?? (1, 1)
            report(line: line, column: column, "YAML: " + problem)
        case .duplicatedKeysInMapping(let duplicates, let context):
            // Yams names the first occurrence; the mistake is the second one.
            let key = duplicates.first ?? ""
            if let (line, column) = Self.repeatedKey(key, after: context.mark, in: lines) {
                report(line: line, column: column, "'\(key)' appears twice in one mapping (first at line \(context.mark.line))")
            } else {
                report(line: context.mark.line, column: context.mark.column, "'\(key)' appears twice in one mapping")
            }
        default:
            report(nil, "YAML: \(error)")
        }
    }

    /// Where `key` appears again in the block mapping whose key at `mark` appears first: the
    /// next line at the same indentation that starts with it, before the mapping ends.
    static func repeatedKey(_ key: String, after mark: Mark, in lines: [Substring]) -> (Int, Int)? {
        let column = mark.column - 1
        var index = mark.line  // the line after the first occurrence (lines are 1-based)
        while index < lines.count {
            let line = lines[index]
            let indentation = line.prefix { $0 == " " }.count
            let rest = line.dropFirst(indentation)
            index += 1
            if rest.isEmpty || rest.hasPrefix("#") { continue }
            if indentation < column { return nil }
            guard indentation == column else { continue }
            for spelling in [key, "'" + key + "'", "\"" + key + "\""] where rest.hasPrefix(spelling + ":") {
                return (index, column + 1)
            }
        }
        return nil
    }

    // MARK: Node helpers

    /// Aliases (`*name`) let a small file stand for a huge document, and Yams keeps no trace of
    /// them once composed. Within the 16 MiB size limit a document cannot honestly hold more text
    /// or nodes than these budgets; past them, reading stops.
    static let textBudget = 2 * Scenario.sizeLimit
    static let nodeBudget = 2_000_000

    /// Counts what reading materialises; `false` (once reported) when over budget.
    mutating func spend(_ node: Node, text: Int = 0) -> Bool {
        textSpent += text
        nodesSpent += 1
        guard textSpent <= Self.textBudget, nodesSpent <= Self.nodeBudget else {
            if !overBudget {
                report(node, "the scenario expands to more than \(Self.textBudget >> 20) MiB or \(Self.nodeBudget) nodes (YAML aliases?); it cannot be read")
                overBudget = true
            }
            return false
        }
        return true
    }

    struct Pairs {
        var values: [String: Node] = [:]
        var keys: [String: Node] = [:]
        var order: [String] = []
        subscript(key: String) -> Node? { values[key] }
    }

    /// A mapping's known keys; unknown ones are reported with the closest known one.
    mutating func mapping(_ node: Node, keys known: [String], what: String) -> Pairs? {
        guard spend(node, text: 16 * (node.mapping?.count ?? 0)) else { return nil }
        guard let mapping = node.mapping else {
            report(node, "\(what) must be a mapping of keys to values")
            return nil
        }
        var pairs = Pairs()
        for (keyNode, value) in mapping {
            guard let key = keyNode.scalar?.string else {
                report(keyNode, "keys must be plain words")
                continue
            }
            guard known.contains(key) else {
                var message = "unknown field '\(key)'"
                if let suggestion = Self.closest(key, in: known) { message += "; did you mean '\(suggestion)'?" }
                report(keyNode, message)
                continue
            }
            if pairs.values[key] != nil {
                report(keyNode, "'\(key)' appears twice")
                continue
            }
            pairs.values[key] = value
            pairs.keys[key] = keyNode
            pairs.order.append(key)
        }
        return pairs
    }

    mutating func required(_ pairs: Pairs, _ key: String, in node: Node) -> Node? {
        if let value = pairs[key] { return value }
        report(node, "missing '\(key)'")
        return nil
    }

    mutating func string(_ node: Node, key: String) -> String? {
        guard spend(node, text: node.scalar?.string.utf8.count ?? 0) else { return nil }
        guard let scalar = node.scalar else {
            report(node, "'\(key)' must be a string")
            return nil
        }
        return scalar.string
    }

    mutating func integer(_ node: Node, key: String) -> Int? {
        guard let text = node.scalar?.string, let value = Int(text) else {
            report(node, "'\(key)' must be a whole number")
            return nil
        }
        return value
    }

    mutating func seconds(_ node: Node, key: String) -> Double? {
        guard let text = node.scalar?.string, let value = Double(text), value.isFinite, value >= 0, value <= 86_400 else {
            report(node, "'\(key)' must be a number of seconds (0 to 86400)")
            return nil
        }
        return value
    }

    mutating func sequence(_ node: Node, key: String) -> [Node]? {
        guard spend(node, text: 16 * (node.sequence?.count ?? 0)) else { return nil }
        guard let items = node.sequence else {
            report(node, "'\(key)' must be a list")
            return nil
        }
        return Array(items)
    }

    mutating func choice<T: RawRepresentable>(_ node: Node, key: String, _ type: T.Type, allowed: [String]) -> T? where T.RawValue == String {
        guard let text = node.scalar?.string, allowed.contains(text), let value = T(rawValue: text) else {
            report(node, "'\(key)' must be one of " + allowed.joined(separator: ", "))
            return nil
        }
        return value
    }

    mutating func base64(_ node: Node, key: String) -> [UInt8]? {
        guard let text = string(node, key: key) else { return nil }
        guard let bytes = Base64.decode(text) else {
            report(node, "'\(key)' is not valid base64")
            return nil
        }
        return bytes
    }

    /// The closest known key, if it is close enough to be a likely typo.
    static func closest(_ key: String, in known: [String]) -> String? {
        let scored = known.map { ($0, distance(key, $0)) }.min { $0.1 < $1.1 }
        guard let (best, score) = scored, score <= max(2, key.count / 3) else { return nil }
        return best
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        var previous = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var current = [i] + Array(repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            previous = current
        }
        return a.isEmpty ? b.count : previous[b.count]
    }

    // MARK: Parts

    mutating func origin(_ node: Node) -> Scenario.Origin? {
        guard let pairs = mapping(node, keys: Self.originKeys, what: "'origin'") else { return nil }
        var origin = Scenario.Origin()
        origin.capture = pairs["capture"].flatMap { string($0, key: "capture") }
        origin.sha256 = pairs["sha256"].flatMap { string($0, key: "sha256") }
        origin.connection = pairs["connection"].flatMap { string($0, key: "connection") }
        origin.session = pairs["session"].flatMap { integer($0, key: "session") }
        origin.proxy = pairs["proxy"].flatMap { string($0, key: "proxy") }
        origin.start = pairs["start"].flatMap { string($0, key: "start") }
        origin.end = pairs["end"].flatMap { string($0, key: "end") }
        for key in ["start", "end"] {
            if let node = pairs[key], let text = node.scalar?.string, Timestamp(rfc3339: text) == nil {
                report(node, "'\(key)' must be an RFC 3339 time in UTC, like 2026-11-29T01:37:40.030560Z")
            }
        }
        if let capture = origin.capture, capture.contains("/") {
            report(pairs["capture"], "'capture' is a file name, not a path")
        }
        return origin
    }

    mutating func session(_ node: Node) -> Scenario.Session? {
        guard let pairs = mapping(node, keys: Self.sessionKeys, what: "a session") else { return nil }
        var implicitTLS = false
        if let tls = pairs["tls"] {
            implicitTLS = string(tls, key: "tls") == "implicit"
            if !implicitTLS { report(tls, "'tls' of a session must be one of implicit") }
        }
        let (greetingGiven, greeting) = replyField(pairs, "greeting", in: "a session")
        if !greetingGiven { report(node, "missing 'greeting'") }
        var steps: [Scenario.Step] = []
        var parsed: [ParsedStep] = []
        var complete = true
        if let stepsNode = pairs["steps"], let items = sequence(stepsNode, key: "steps") {
            var ended: Node?
            for item in items {
                if ended != nil {
                    report(item, "a step after the session ended (a QUIT or a fault ends it)")
                    ended = nil
                }
                if let step = step(item) {
                    steps.append(step.step)
                    parsed.append(step)
                    if step.step.endsSession { ended = item }
                } else {
                    complete = false
                }
            }
        }
        let end = pairs["end"].flatMap { choice($0, key: "end", Scenario.Ending.self, allowed: Scenario.Ending.allCases.map(\.rawValue)) }
        let greetingBy = pairs["greeting-by"].flatMap { choice($0, key: "greeting-by", Scenario.ReplySource.self, allowed: Scenario.ReplySource.allCases.map(\.rawValue)) }
        guard let greeting else { return nil }
        let session = Scenario.Session(
            name: pairs["name"].flatMap { string($0, key: "name") },
            note: pairs["note"].flatMap { string($0, key: "note") },
            implicitTLS: implicitTLS,
            incomplete: pairs["incomplete"].flatMap { string($0, key: "incomplete") },
            greeting: greeting,
            greetingBy: greetingBy ?? .server,
            greetingDelay: pairs["greeting-delay"].flatMap { seconds($0, key: "greeting-delay") },
            recordedGreetingDelay: pairs["recorded-greeting-delay"].flatMap { seconds($0, key: "recorded-greeting-delay") },
            steps: steps,
            end: end)
        // The dialogue is checked only when every step read: one broken step would shift the rest.
        if complete {
            checkConversation(session, steps: parsed, greeting: pairs["greeting"] ?? pairs["greeting-base64"], end: pairs["end"])
        }
        return session
    }

    /// A step as read, with the nodes its checks point at.
    struct ParsedStep {
        var step: Scenario.Step
        var node: Node
        var pairs: Pairs
        /// The key that names the step's kind (`client`, `message-base64`, ...), absent for a reply alone.
        var kindKey: String?
        /// The step's expectation, for a `wildcard` or `regex` match (`nil` otherwise, and when
        /// its pattern did not compile).
        var matcher: StepMatcher?
    }

    mutating func step(_ node: Node) -> ParsedStep? {
        guard let pairs = mapping(node, keys: Self.stepKeys, what: "a step") else { return nil }
        let kinds = pairs.order.filter { Self.stepKinds.contains($0) }
        if kinds.isEmpty, let first = pairs.order.first, first == "reply" || first == "reply-base64" {
            return unsolicited(pairs, node: node).map { ParsedStep(step: $0, node: node, pairs: pairs, kindKey: nil, matcher: nil) }
        }
        guard let kindKey = kinds.first else {
            report(node, "a step needs one of client, auth, message or message-file (or, for a reply the server sends unprompted, 'reply' first)")
            return nil
        }
        for extra in kinds.dropFirst() {
            report(pairs.keys[extra], "a step has only one of client, auth, message, message-file (this one has '\(kindKey)' already)")
        }
        let isCommand = kindKey.hasPrefix("client")
        let isMessage = kindKey.hasPrefix("message")
        let valueNode = pairs[kindKey]!
        var client: [UInt8]?
        var messageFile: String?
        switch kindKey {
        case "client", "auth":
            if let text = string(valueNode, key: kindKey) {
                if text.contains("\n") || text.contains("\r") {
                    report(valueNode, "'\(kindKey)' is one line; use '\(kindKey)-base64' for exact bytes")
                } else if text.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) {
                    report(valueNode, "'\(kindKey)' holds a control character; use '\(kindKey)-base64' for exact bytes")
                } else {
                    client = Array(text.utf8) + [0x0D, 0x0A]
                }
            }
        case "message":
            client = string(valueNode, key: kindKey).map(TextForm.messageBytes)
        case "message-file":
            if let name = string(valueNode, key: kindKey) {
                client = messageFileContent(name, key: pairs.keys[kindKey]!)
                messageFile = name
            }
        default:
            client = base64(valueNode, key: kindKey)
        }
        for key in ["compare", "via", "chunks", "chunk-replies"] where pairs[key] != nil && !isMessage {
            report(pairs.keys[key], "'\(key)' applies to message steps only")
        }
        if pairs["tls"] != nil, !isCommand { report(pairs.keys["tls"], "'tls' applies to client steps only") }

        var lineMatch = Scenario.Match.exact
        var messageMatch = Scenario.MessageMatch.normalized
        if isMessage {
            if let matchNode = pairs["match"] {
                messageMatch = choice(matchNode, key: "match", Scenario.MessageMatch.self, allowed: Scenario.MessageMatch.written.map(\.rawValue)) ?? .normalized
            }
            if let compare = pairs["compare"] {
                // The spelling before `match` applied to messages: still read.
                if string(compare, key: "compare") != "exact" {
                    report(compare, "'compare' must be exact (the older spelling of 'match: exact')")
                } else if pairs["match"] != nil {
                    report(pairs.keys["compare"], "'compare: exact' is the older spelling of 'match: exact': give only 'match'")
                } else {
                    messageMatch = .exact
                }
            }
        } else if let matchNode = pairs["match"] {
            lineMatch = choice(matchNode, key: "match", Scenario.Match.self, allowed: Scenario.Match.allCases.map(\.rawValue)) ?? .exact
        }
        let pattern = pairs["pattern"].flatMap { string($0, key: "pattern") }
        let takesPattern = isMessage ? [.wildcard, .regex].contains(messageMatch) : [.wildcard, .regex].contains(lineMatch)
        if pairs["pattern"] != nil, !takesPattern {
            report(pairs.keys["pattern"], "'pattern' goes with 'match: wildcard' or 'match: regex'")
        }
        var via = MessageTransfer.data
        if let viaNode = pairs["via"] {
            switch viaNode.scalar?.string {
            case "DATA": via = .data
            case "BDAT": via = .bdat
            default: report(viaNode, "'via' must be one of DATA, BDAT")
            }
        }
        var chunks: [Int] = []
        if let chunksNode = pairs["chunks"], let items = sequence(chunksNode, key: "chunks") {
            for item in items {
                guard let size = integer(item, key: "chunks") else { continue }
                if size < 0 || size > 1 << 31 {
                    report(item, "a chunk size must be 0 to 2147483648")
                } else {
                    chunks.append(size)
                }
            }
        }
        var chunkReplies: [Scenario.Reply] = []
        if let repliesNode = pairs["chunk-replies"], let items = sequence(repliesNode, key: "chunk-replies") {
            for item in items {
                if let nested = item.mapping, let raw = nested["base64"] {
                    if let bytes = base64(raw, key: "base64") { chunkReplies.append(Scenario.Reply(bytes: bytes)) }
                } else if let value = reply(item, key: "chunk-replies") {
                    chunkReplies.append(value)
                }
            }
        }
        let (fault, reply) = faultAndReply(pairs, node: node)
        let replyBy = replySource(pairs, fault: fault)
        var startsTLS = false
        if let tls = pairs["tls"], isCommand {
            startsTLS = string(tls, key: "tls") == "start"
            if !startsTLS { report(tls, "'tls' of a step must be one of start") }
        }
        if via != .bdat {
            for key in ["chunks", "chunk-replies"] where pairs[key] != nil && isMessage {
                report(pairs.keys[key], "'\(key)' goes with 'via: BDAT'")
            }
        }
        guard let client else { return nil }
        let kind: Scenario.Step.Kind
        if isMessage {
            kind = .message(Scenario.Message(content: client, via: via, chunks: chunks, chunkReplies: chunkReplies,
                                             match: messageMatch, pattern: pattern, file: messageFile))
        } else {
            let line = Scenario.ClientLine(bytes: client, match: lineMatch, pattern: pattern)
            kind = isCommand ? .command(line) : .auth(line)
        }
        let step = Scenario.Step(
            kind: kind, reply: reply, replyBy: replyBy,
            delay: pairs["delay"].flatMap { seconds($0, key: "delay") },
            recordedDelay: pairs["recorded-delay"].flatMap { seconds($0, key: "recorded-delay") },
            fault: fault, startsTLS: startsTLS,
            note: pairs["note"].flatMap { string($0, key: "note") })
        // Patterns are compiled here, once, for the checks: a bad one is reported where it is
        // written. (Other matchers are left to replay: normalizing every message costs time.)
        var matcher: StepMatcher?
        if takesPattern {
            do {
                matcher = try StepMatcher(step)
            } catch {
                report(pairs["pattern"] ?? valueNode, "invalid regular expression: \(error.message)")
            }
        }
        return ParsedStep(step: step, node: node, pairs: pairs, kindKey: kindKey, matcher: matcher)
    }

    /// `fault`, and the reply, which a fault that sends none (`drop`, `stall`, `reset`) must not
    /// have and every other step must.
    mutating func faultAndReply(_ pairs: Pairs, node: Node) -> (Scenario.Fault?, Scenario.Reply?) {
        let fault = pairs["fault"].flatMap { choice($0, key: "fault", Scenario.Fault.self, allowed: Scenario.Fault.allCases.map(\.rawValue)) }
        let (replyGiven, reply) = replyField(pairs, "reply", in: "a step")
        if !replyGiven, fault?.sendsReply ?? true {
            report(node, "missing 'reply' (a step without a reply needs 'fault: drop', 'stall' or 'reset')")
        }
        if let fault, !fault.sendsReply, let replyKey = pairs.keys["reply"] ?? pairs.keys["reply-base64"] {
            let what = switch fault {
            case .drop: "closes the connection without a reply"
            case .stall: "never answers"
            case .reset: "resets the connection without a reply"
            case .partial: ""
            }
            report(replyKey, "'fault: \(fault.rawValue)' \(what): remove the reply")
        }
        if fault == .stall {
            for key in ["delay", "recorded-delay"] where pairs[key] != nil {
                report(pairs.keys[key], "'\(key)' means nothing with 'fault: stall', which never answers: remove it")
            }
        }
        return (fault, fault?.sendsReply == false ? nil : reply)
    }

    /// `reply-by`, which only a step with a reply to attribute may have (not one whose fault
    /// sends none).
    mutating func replySource(_ pairs: Pairs, fault: Scenario.Fault?) -> Scenario.ReplySource {
        guard let node = pairs["reply-by"],
              let source = choice(node, key: "reply-by", Scenario.ReplySource.self, allowed: Scenario.ReplySource.allCases.map(\.rawValue)) else {
            return .server
        }
        let hasReply = (pairs["reply"] != nil || pairs["reply-base64"] != nil) && fault?.sendsReply ?? true
        guard hasReply else {
            let why = fault.map { "'fault: \($0.rawValue)' sends none" } ?? "it has none"
            report(pairs.keys["reply-by"], "'reply-by' says who sent the step's reply, and \(why): remove it")
            return .server
        }
        return source
    }

    /// The bytes of the message file `name` (`message-file`), read from the base folder.
    /// Problems point at the key.
    mutating func messageFileContent(_ name: String, key: Node) -> [UInt8]? {
        guard OutputFolder.isSafeName(name) else {
            report(key, "'message-file' is a plain file name in the scenario's folder (letters, digits, '.', '-', '_', not starting with '.'), not '\(name)'")
            return nil
        }
        guard let folder = baseFolder else {
            let why = file == "stdin" ? "a scenario read from standard input has no folder" : "this scenario was read with no folder given"
            report(key, "'message-file' names a file beside the scenario, and \(why) to read '\(name)' from")
            return nil
        }
        do {
            return try FileBeside.read(name, in: folder, limit: Scenario.messageFileLimit)
        } catch {
            if error.isMissing {
                report(key, "'message-file' \(name): no such file in \(folder == "." ? "the current folder" : folder)")
            } else {
                report(key, "'message-file' \(name) \(error.message)")
            }
            return nil
        }
    }

    /// A step with only a reply: the server speaks without being asked.
    mutating func unsolicited(_ pairs: Pairs, node: Node) -> Scenario.Step? {
        for key in pairs.order where !["reply", "reply-base64", "reply-by", "delay", "recorded-delay", "fault", "note"].contains(key) {
            report(pairs.keys[key], "'\(key)' does not apply to a step that is only a reply")
        }
        let (_, reply) = replyField(pairs, "reply", in: "a step")
        var fault: Scenario.Fault?
        if let faultNode = pairs["fault"] {
            fault = choice(faultNode, key: "fault", Scenario.Fault.self, allowed: Scenario.Fault.allCases.map(\.rawValue))
            if let other = fault, other != .partial {
                report(faultNode, "'fault: \(other.rawValue)' does not apply to a reply the server sends unprompted (only 'fault: partial' does)")
                fault = nil
            }
        }
        let replyBy = replySource(pairs, fault: fault)
        guard let reply else { return nil }
        return Scenario.Step(kind: .unsolicited, reply: reply, replyBy: replyBy,
                             delay: pairs["delay"].flatMap { seconds($0, key: "delay") },
                             recordedDelay: pairs["recorded-delay"].flatMap { seconds($0, key: "recorded-delay") },
                             fault: fault,
                             note: pairs["note"].flatMap { string($0, key: "note") })
    }

    /// `key` (a reply written as lines) or `key-base64` (its exact bytes), one of the two; whether
    /// either was given, and the reply if it is valid.
    mutating func replyField(_ pairs: Pairs, _ key: String, in what: String) -> (given: Bool, reply: Scenario.Reply?) {
        let base64Key = key + "-base64"
        if pairs[key] != nil, pairs[base64Key] != nil {
            report(pairs.keys[base64Key], "\(what) has only one of \(key), \(base64Key)")
            return (true, nil)
        }
        if let text = pairs[key] { return (true, reply(text, key: key)) }
        if let raw = pairs[base64Key] { return (true, base64(raw, key: base64Key).map { Scenario.Reply(bytes: $0) }) }
        return (false, nil)
    }

    /// A reply written as lines: each must start with the same three-digit code, with `-` after
    /// the code on every line but the last (RFC 5321 4.2.1). Problems point at the line.
    mutating func reply(_ node: Node, key: String) -> Scenario.Reply? {
        guard let text = string(node, key: key) else { return nil }
        let replyLines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let block = node.scalar?.style == .literal || node.scalar?.style == .folded
        var valid = true
        for index in replyLines.indices {
            // Where this line stands in the file: inside a block, one source line per reply line.
            var lineNumber = node.mark?.line ?? 1
            var column = node.mark?.column ?? 1
            if block {
                lineNumber += 1 + index
                if lineNumber - 1 < lines.count {
                    column = lines[lineNumber - 1].prefix { $0 == " " }.count + 1
                }
            }
            for problem in ReplyGrammar.problems(replyLines, at: index) {
                report(line: lineNumber, column: column, problem)
                valid = false
            }
            if replyLines[index].unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\t" || $0.value == 0x7F }) {
                report(line: lineNumber, column: column, "a reply line holds CR or another control character; write the exact bytes as '\(key)-base64'")
                valid = false
            }
        }
        return valid ? Scenario.Reply(text) : nil
    }
}

extension Node.Mapping {
    subscript(key: String) -> Node? {
        first { $0.key.scalar?.string == key }?.value
    }
}
