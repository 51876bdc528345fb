import SMTPCore

/// Verdicts written out: readable text (standard error, test failures), JSON Lines (`--report`)
/// and JUnit XML (`--junit`).
public enum VerdictReport {
    // MARK: Text

    /// A few lines per session: the outcome, then each step that did not pass, then the notes.
    public static func text(_ verdict: Verdict) -> String {
        var lines = ["session \(verdict.session) (\(verdict.client), scenario '\(verdict.scenario)' session \(verdict.scenarioSession)): "
            + (verdict.passed ? "passed" : "FAILED") + ", \(verdict.steps.filter { $0.step != nil }.count) steps, \(verdict.messages.count) message\(verdict.messages.count == 1 ? "" : "s")"]
        for result in verdict.steps where result.status != .passed {
            lines.append("  " + describe(result))
        }
        for note in verdict.notes {
            lines.append("  note: " + note)
        }
        return lines.joined(separator: "\n")
    }

    /// One step's outcome in a line.
    public static func describe(_ result: Verdict.StepResult) -> String {
        let name = result.step.map { "step \($0)" } ?? "unscripted"
        var text = "\(name) \(result.status.rawValue)"
        switch result.status {
        case .passed:
            text += ": " + quoted(result.actual ?? "")
        case .mismatched:
            text += ": expected " + quoted(result.expected ?? "") + ", got " + quoted(result.actual ?? "")
            if result.attempts.count > 1 { text += " (\(result.attempts.count) attempts)" }
            if let closest = result.closest { text += "; closest: step \(closest.step) " + quoted(closest.expected) }
        case .missing, .interrupted:
            text += ": " + quoted(result.expected ?? "")
        case .unexpected:
            text += ": " + quoted(result.actual ?? "") + (result.tolerated ? " (answered by default, --lenient)" : "")
        }
        return text
    }

    /// The last line of a run: how many sessions passed, failed, and went unused.
    public static func summaryText(_ verdicts: [Verdict], unused: [String]) -> String {
        let failed = verdicts.filter { !$0.passed }.count
        var text = "smtptape: \(verdicts.count) session\(verdicts.count == 1 ? "" : "s"), \(verdicts.count - failed) passed, \(failed) failed"
        if !unused.isEmpty { text += ", \(unused.count) scripted session\(unused.count == 1 ? "" : "s") unused (\(unused.joined(separator: ", ")))" }
        return text
    }

    static func quoted(_ text: String) -> String { "'" + text + "'" }

    // MARK: JSON Lines

    /// One `verdict` object (one line, no line ending).
    public static func json(_ verdict: Verdict) -> String {
        var out = JSONLine()
        out.field("type", "verdict")
        out.field("session", verdict.session)
        out.field("time", verdict.time)
        out.field("client", verdict.client)
        out.field("scenario", verdict.scenario)
        out.field("scenario_session", verdict.scenarioSession)
        out.field("passed", verdict.passed)
        out.key("steps")
        out.raw("[")
        for (index, result) in verdict.steps.enumerated() {
            if index > 0 { out.raw(",") }
            var step = JSONLine()
            if let number = result.step { step.field("step", number) } else { step.null("step") }
            step.field("status", result.status.rawValue)
            if let expected = result.expected { step.field("expected", expected) } else { step.null("expected") }
            if let actual = result.actual { step.field("actual", actual) } else { step.null("actual") }
            if let closest = result.closest {
                var inner = JSONLine()
                inner.field("step", closest.step)
                inner.field("expected", closest.expected)
                step.key("closest")
                step.raw(inner.finished)
            } else {
                step.null("closest")
            }
            step.key("attempts")
            step.raw("[" + result.attempts.map(JSONLine.string).joined(separator: ",") + "]")
            step.field("tolerated", result.tolerated)
            out.raw(step.finished)
        }
        out.raw("]")
        out.key("messages")
        out.raw("[")
        for (index, message) in verdict.messages.enumerated() {
            if index > 0 { out.raw(",") }
            var item = JSONLine()
            if let from = message.mailFrom { item.field("mail_from", from) } else { item.null("mail_from") }
            item.key("rcpt_to")
            item.raw("[" + message.rcptTo.map(JSONLine.string).joined(separator: ",") + "]")
            item.field("via", message.transfer == .data ? "DATA" : "BDAT")
            item.field("size", message.size)
            if let code = message.replyCode { item.field("reply_code", code) } else { item.null("reply_code") }
            item.field("data", Base64.encode(message.content))
            out.raw(item.finished)
        }
        out.raw("]")
        out.key("notes")
        out.raw("[" + verdict.notes.map(JSONLine.string).joined(separator: ",") + "]")
        return out.finished
    }

    /// The `summary` object that ends a report.
    public static func jsonSummary(_ verdicts: [Verdict], unused: [String]) -> String {
        var out = JSONLine()
        out.field("type", "summary")
        out.field("passed", verdicts.allSatisfy(\.passed) && unused.isEmpty)
        out.field("sessions", verdicts.count)
        out.field("failed", verdicts.filter { !$0.passed }.count)
        out.key("unused")
        out.raw("[" + unused.map(JSONLine.string).joined(separator: ",") + "]")
        return out.finished
    }

    // MARK: JUnit

    /// JUnit XML: one test suite, one test case per session (failed with its first failing step)
    /// and one per scripted session that went unused.
    public static func junit(_ verdicts: [Verdict], unused: [String], name: String = "smtptape replay") -> String {
        let failures = verdicts.filter { !$0.passed }.count + unused.count
        var xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        xml += "<testsuites tests=\"\(verdicts.count + unused.count)\" failures=\"\(failures)\">\n"
        xml += "  <testsuite name=\"\(escape(name))\" tests=\"\(verdicts.count + unused.count)\" failures=\"\(failures)\">\n"
        for verdict in verdicts {
            let caseName = "session \(verdict.session): \(verdict.scenario) (session \(verdict.scenarioSession))"
            xml += "    <testcase classname=\"\(escape(verdict.scenario))\" name=\"\(escape(caseName))\">\n"
            if let failure = verdict.firstFailure {
                xml += "      <failure message=\"\(escape(describe(failure)))\">\(escape(text(verdict)))</failure>\n"
            }
            xml += "      <system-out>\(escape(text(verdict)))</system-out>\n"
            xml += "    </testcase>\n"
        }
        for session in unused {
            xml += "    <testcase classname=\"unused\" name=\"\(escape(session))\">\n"
            xml += "      <failure message=\"\(escape("no client played " + session))\"/>\n"
            xml += "    </testcase>\n"
        }
        xml += "  </testsuite>\n</testsuites>\n"
        return xml
    }

    static func escape(_ text: String) -> String {
        var out = ""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n", "\t": out.unicodeScalars.append(scalar)
            default:
                // XML 1.0 has no place for other control characters.
                if scalar.value < 0x20 || (0xFFFE...0xFFFF).contains(scalar.value) {
                    out += "?"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// A JSON object written field by field.
struct JSONLine {
    var text = "{"
    var first = true

    mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        text += Self.string(name) + ":"
    }

    mutating func raw(_ value: String) { text += value }
    mutating func field(_ name: String, _ value: String) { key(name); text += Self.string(value) }
    mutating func field(_ name: String, _ value: Int) { key(name); text += String(value) }
    mutating func field(_ name: String, _ value: Bool) { key(name); text += value ? "true" : "false" }
    mutating func null(_ name: String) { key(name); text += "null" }

    var finished: String { text + "}" }

    static func string(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F || (0x80...0x9F).contains(scalar.value) || scalar.value == 0x2028 || scalar.value == 0x2029 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}
