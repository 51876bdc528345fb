import SMTPCore
import Yams

/// Writes scenarios in canonical form (see `Scenarios/FORMAT.md`): from the model alone, keys in
/// a fixed order, fixed styles and emitter settings, so that what smtptape writes reads back to an
/// equal value and writes back to the same bytes.
public enum ScenarioWriter {
    /// The scenario as canonical YAML (what ``ScenarioReader`` reads back to an equal value).
    public static func yaml(_ scenario: Scenario) -> String {
        let node = Node.mapping(mapping([
            ("version", .scalar(.init(String(scenario.version), Tag(.int)))),
            ("name", string(scenario.name)),
            ("description", scenario.description.map(string)),
            ("tags", scenario.tags.isEmpty ? nil : .sequence(.init(scenario.tags.map(string), Tag(.seq), .flow))),
            ("origin", scenario.origin.flatMap(origin)),
            ("note", scenario.note.map(string)),
            ("sessions", .sequence(.init(scenario.sessions.map(session), Tag(.seq), .block))),
        ]))
        // Settings are part of the canonical form: two-space indentation, no line wrapping,
        // UTF-8 as is, LF line breaks.
        do {
            return try Yams.serialize(node: node, indent: 2, width: -1, allowUnicode: true, lineBreak: .ln)
        } catch {
            // The emitter only fails on nodes it cannot represent; the tree above is always valid.
            preconditionFailure("YAML emitter refused a scenario: \(error)")
        }
    }

    static func mapping(_ pairs: [(String, Node?)]) -> Node.Mapping {
        Node.Mapping(pairs.compactMap { key, value in value.map { (string(key), $0) } }, Tag(.map), .block)
    }

    /// A string scalar: plain where YAML allows it and the text would not read back as another
    /// type (`yes`, `1.0`, `null`), quoted otherwise; multi-line text as a literal block.
    static func string(_ value: String) -> Node {
        if value.contains("\n") {
            return .scalar(.init(value, Tag(.str), .literal))
        }
        let resolved = Resolver.default.resolveTag(of: Node.scalar(.init(value)))
        return .scalar(.init(value, Tag(.str), resolved == .str ? .any : .singleQuoted))
    }

    static func integer(_ value: Int) -> Node { .scalar(.init(String(value), Tag(.int))) }

    /// Seconds, in Swift's shortest representation that reads back to the same value.
    static func number(_ value: Double) -> Node {
        if value == value.rounded(), abs(value) < 1e15 { return .scalar(.init(String(Int(value)), Tag(.int))) }
        return .scalar(.init(value.description, Tag(.float)))
    }

    static func origin(_ origin: Scenario.Origin) -> Node? {
        guard !origin.isEmpty else { return nil }
        return .mapping(mapping([
            ("capture", origin.capture.map(string)),
            ("sha256", origin.sha256.map(string)),
            ("connection", origin.connection.map(string)),
            ("session", origin.session.map(integer)),
            ("proxy", origin.proxy.map(string)),
            ("start", origin.start.map(string)),
            ("end", origin.end.map(string)),
        ]))
    }

    static func session(_ session: Scenario.Session) -> Node {
        var pairs: [(String, Node?)] = [
            ("name", session.name.map(string)),
            ("note", session.note.map(string)),
            ("tls", session.implicitTLS ? string("implicit") : nil),
            ("incomplete", session.incomplete.map(string)),
        ]
        pairs += reply(session.greeting, key: "greeting")
        pairs += [
            ("greeting-by", source(session.greetingBy)),
            ("greeting-delay", session.greetingDelay.map(number)),
            ("recorded-greeting-delay", session.recordedGreetingDelay.map(number)),
            ("steps", session.steps.isEmpty ? nil : .sequence(.init(session.steps.map(step), Tag(.seq), .block))),
            ("end", session.end == session.inferredEnd ? nil : string(session.end.rawValue)),
        ]
        return .mapping(mapping(pairs))
    }

    /// `key: text` when every line is printable, else `key-base64: bytes`.
    static func reply(_ reply: Scenario.Reply, key: String) -> [(String, Node?)] {
        if let lines = reply.textLines {
            return [(key, string(lines.joined(separator: "\n")))]
        }
        return [(key + "-base64", string(Base64.encode(reply.bytes)))]
    }

    static func replyNode(_ reply: Scenario.Reply) -> Node {
        if let lines = reply.textLines { return string(lines.joined(separator: "\n")) }
        return .mapping(mapping([("base64", string(Base64.encode(reply.bytes)))]))
    }

    static func step(_ step: Scenario.Step) -> Node {
        var pairs: [(String, Node?)] = []
        switch step.kind {
        case .unsolicited:
            break
        case .command(let line):
            pairs += clientLine(line, key: "client")
        case .auth(let line):
            pairs += clientLine(line, key: "auth")
        case .message(let message):
            if let file = message.file {
                // The content is in the file beside the scenario, which its owner writes.
                pairs.append(("message-file", string(file)))
            } else if let text = TextForm.message(message.content) {
                pairs.append(("message", .scalar(.init(text, Tag(.str), .literal))))
            } else {
                pairs.append(("message-base64", string(Base64.encode(message.content))))
            }
            pairs.append(("match", message.match == .normalized ? nil : string(message.match.rawValue)))
            pairs.append(("pattern", message.pattern.map(string)))
            pairs.append(("via", message.via == .data ? nil : string(message.via.name)))
            pairs.append(("chunks", message.chunks.isEmpty ? nil : .sequence(.init(message.chunks.map(integer), Tag(.seq), .flow))))
            pairs.append(("chunk-replies", message.chunkReplies.isEmpty ? nil : .sequence(.init(message.chunkReplies.map(replyNode), Tag(.seq), .block))))
        }
        if let answer = step.reply { pairs += reply(answer, key: "reply") }
        pairs += [
            ("reply-by", step.reply == nil ? nil : source(step.replyBy)),
            ("delay", step.delay.map(number)),
            ("recorded-delay", step.recordedDelay.map(number)),
            ("fault", step.fault.map { string($0.rawValue) }),
            ("tls", step.startsTLS ? string("start") : nil),
            ("note", step.note.map(string)),
        ]
        return .mapping(mapping(pairs))
    }

    /// `proxy`; the server, the default, is not written.
    static func source(_ source: Scenario.ReplySource) -> Node? {
        source == .server ? nil : string(source.rawValue)
    }

    /// `key: text` (or `key-base64: bytes`), then `match` and `pattern`.
    static func clientLine(_ line: Scenario.ClientLine, key: String) -> [(String, Node?)] {
        var pairs: [(String, Node?)] = []
        if let lines = TextForm.lines(line.bytes), lines.count == 1 {
            pairs.append((key, string(lines[0])))
        } else {
            pairs.append((key + "-base64", string(Base64.encode(line.bytes))))
        }
        pairs.append(("match", line.match == .exact ? nil : string(line.match.rawValue)))
        pairs.append(("pattern", line.pattern.map(string)))
        return pairs
    }
}
