import SMTPCore

/// Builds a scenario from each session it observes (from a capture, later from the proxy).
///
/// It follows the defaults that let a recorded scenario replay against the same client run again
/// (see `Scenarios/FORMAT.md`): the EHLO/HELO argument and the value of `SIZE=` become wildcards,
/// AUTH secrets the placeholder (unless `showSecrets`), BDAT chunk sizes are kept but not
/// compared, and the server's think time before each reply is kept as `delay`. What cannot be
/// recorded (TLS, gaps) is explained in the session's `incomplete`.
public final class ScenarioRecorder: SessionObserver {
    final class Builder {
        enum Awaiting {
            case reply(step: Int)
            case chunk(step: Int, last: Bool)
        }

        let info: SessionInfo
        var greeting: Scenario.Reply?
        var greetingDelay: Double?
        var steps: [Scenario.Step] = []
        var stepTimes: [Timestamp] = []
        var awaiting: [Awaiting] = []
        var openMessage: Int?
        var notes: [String] = []
        var implicitTLS = false
        /// Replies before the first command seen, in a capture that began mid-session.
        var earlyReplies = 0

        init(info: SessionInfo) { self.info = info }
    }

    let showSecrets: Bool
    let origin: (SessionInfo) -> Scenario.Origin?
    var builders: [Int: Builder] = [:]
    var current: Builder?
    /// Called with each session's scenario as the session ends.
    public var onScenario: ((SessionInfo, Scenario) -> Void)?

    /// - Parameter origin: where a session came from (capture name and hash, connection, times).
    public init(showSecrets: Bool = false, origin: @escaping (SessionInfo) -> Scenario.Origin? = { _ in nil }) {
        self.showSecrets = showSecrets
        self.origin = origin
    }

    static func seconds(from start: Timestamp, to end: Timestamp) -> Double? {
        let millis = (end.nanoseconds - start.nanoseconds) / 1_000_000
        return millis >= 1 ? Double(millis) / 1000 : nil
    }

    // MARK: SessionObserver

    public func sessionStarted(_ info: SessionInfo) {
        let builder = Builder(info: info)
        builders[info.id] = builder
        current = builder
    }

    public func select(session id: Int) { current = builders[id] }

    func addStep(_ step: Scenario.Step, time: Timestamp, to builder: Builder) -> Int {
        builder.steps.append(step)
        builder.stepTimes.append(time)
        return builder.steps.count - 1
    }

    public func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp) {
        guard let builder = current else { return }
        if verb == .bdat, let chunk = SMTPCommand(line: raw).binaryDataChunk {
            let index: Int
            if let open = builder.openMessage, builder.steps[open].via == .bdat {
                index = open
            } else {
                index = addStep(Scenario.Step(kind: .message, client: [], via: .bdat, reply: nil), time: time, to: builder)
                builder.openMessage = index
            }
            builder.steps[index].chunks.append(chunk.size)
            builder.awaiting.append(.chunk(step: index, last: chunk.isLast))
            return
        }
        var line = Array(raw)
        if let secret, !showSecrets { line = Secrets.redact(raw, secret: secret) }
        var step = Scenario.Step(kind: .command, client: line, reply: nil)
        if let (pattern, match) = Self.defaultMatch(line, verb: verb) {
            step.pattern = String(decoding: pattern.dropLast(2), as: UTF8.self)
            step.match = match
        }
        let index = addStep(step, time: time, to: builder)
        builder.awaiting.append(.reply(step: index))
    }

    /// The wildcard a recorded line becomes by default: `EHLO *`, `MAIL FROM:<a@b> SIZE=*`.
    static func defaultMatch(_ line: [UInt8], verb: SMTPVerb) -> ([UInt8], Scenario.Match)? {
        guard TextForm.lines(line)?.count == 1, !line.contains(0x2A), !line.contains(0x3F) else { return nil }
        let content = Array(line.dropLast(2))
        switch verb {
        case .ehlo, .helo:
            guard let space = content.firstIndex(of: 0x20) else { return nil }
            return (Array(content[...space]) + [0x2A, 0x0D, 0x0A], .wildcard)
        case .mail:
            let upper = content.map { (0x61...0x7A).contains($0) ? $0 - 0x20 : $0 }
            guard let range = MessageNormalizer.find(upper, Array(" SIZE=".utf8)) else { return nil }
            var end = range.upperBound
            while end < content.count, (0x30...0x39).contains(content[end]) { end += 1 }
            guard end > range.upperBound else { return nil }
            return (Array(content[..<range.upperBound]) + [0x2A] + Array(content[end...]) + [0x0D, 0x0A], .wildcard)
        default:
            return nil
        }
    }

    public func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp) {
        guard let builder = current else { return }
        var line = Array(raw)
        if let secret, !showSecrets { line = Secrets.redact(raw, secret: secret) }
        let index = addStep(Scenario.Step(kind: .auth, client: line, reply: nil), time: time, to: builder)
        builder.awaiting.append(.reply(step: index))
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        guard let builder = current else { return }
        if transfer == .bdat {
            guard let open = builder.openMessage else { return }
            builder.steps[open].client.append(contentsOf: raw)
            return
        }
        let index: Int
        if let open = builder.openMessage, builder.steps[open].via == .data {
            index = open
        } else {
            index = addStep(Scenario.Step(kind: .message, client: [], reply: nil), time: time, to: builder)
            builder.openMessage = index
        }
        DotStuffing.unstuff(raw, atLineStart: atLineStart, into: &builder.steps[index].client)
        builder.stepTimes[index] = time
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        guard let builder = current else { return }
        if !complete { builder.notes.append("message \(message) was cut short (\(size) bytes recorded)") }
        if transfer == .data {
            let index: Int
            if let open = builder.openMessage, builder.steps[open].via == .data {
                index = open
            } else {
                // An empty message: nothing came between the 354 and the dot.
                index = addStep(Scenario.Step(kind: .message, client: [], reply: nil), time: time, to: builder)
            }
            builder.stepTimes[index] = time
            if complete { builder.awaiting.append(.reply(step: index)) }
        }
        builder.openMessage = nil
    }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        guard let builder = current else { return }
        let reply = Scenario.Reply(bytes: Array(raw))
        if context == .greeting {
            builder.greeting = reply
            builder.greetingDelay = Self.seconds(from: builder.info.start, to: time)
            return
        }
        if builder.greeting == nil, builder.steps.isEmpty {
            // The capture began mid-session: this answers a command it never saw.
            builder.earlyReplies += 1
            return
        }
        guard code != nil, !builder.awaiting.isEmpty else {
            // A reply nothing was waiting for (`421 4.4.2 timeout`): a step of its own.
            let index = addStep(Scenario.Step(kind: .unsolicited, client: [], reply: reply), time: time, to: builder)
            if index > 0 { builder.steps[index].delay = Self.seconds(from: builder.stepTimes[index - 1], to: time) }
            return
        }
        switch builder.awaiting.removeFirst() {
        case .reply(let index):
            builder.steps[index].reply = reply
            builder.steps[index].delay = Self.seconds(from: builder.stepTimes[index], to: time)
        case .chunk(let index, let last):
            if last {
                builder.steps[index].reply = reply
                builder.steps[index].delay = Self.seconds(from: builder.stepTimes[index], to: time)
            } else {
                builder.steps[index].chunkReplies.append(reply)
            }
        }
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, time: Timestamp) {
        current?.notes.append("\(raw.count) unreadable \(side.name) bytes after a gap were left out")
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        guard let builder = current else { return }
        builder.notes.append("\(bytes) \(side.name) bytes are missing from the capture (after step \(builder.steps.count))")
    }

    public func tlsStarted(_ mode: TLSMode, time: Timestamp) {
        guard let builder = current else { return }
        if mode == .implicit {
            builder.implicitTLS = true
        } else if let last = builder.steps.indices.last(where: { builder.steps[$0].verb == .starttls }) {
            builder.steps[last].startsTLS = true
        }
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        guard let builder = builders.removeValue(forKey: info.id) else { return }
        if current === builder { current = nil }
        onScenario?(info, scenario(builder, summary: summary, reason: reason, time: time))
    }

    func scenario(_ builder: Builder, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) -> Scenario {
        var notes = builder.notes
        if builder.earlyReplies > 0 {
            notes.insert(builder.earlyReplies == 1
                ? "the capture began mid-session: 1 reply to a command sent before it was left out"
                : "the capture began mid-session: \(builder.earlyReplies) replies to commands sent before it were left out", at: 0)
        }
        var steps = builder.steps
        // A step the server never answered: the server dropped the connection, or the capture
        // ended first. It becomes the last step, with `fault: drop`.
        if let unanswered = steps.firstIndex(where: { $0.reply == nil }) {
            if unanswered + 1 < steps.count {
                notes.append("\(steps.count - unanswered - 1) step(s) sent after an unanswered one were left out")
            }
            steps.removeSubrange((unanswered + 1)...)
            steps[unanswered].fault = .drop
            steps[unanswered].delay = nil
            if reason == .captureEnded || reason == .fileDamaged || reason == .idle {
                notes.append("the capture ended before the server answered the last step")
            }
        }
        // Steps after a QUIT (the dialogue went on after it) cannot be replayed.
        if let quit = steps.firstIndex(where: { $0.endsSession }), quit + 1 < steps.count {
            notes.append("\(steps.count - quit - 1) step(s) after the session ended were left out")
            steps.removeSubrange((quit + 1)...)
        }
        if let tls = summary.tls {
            let counts = "\(summary.encryptedClient) client and \(summary.encryptedServer) server bytes"
            notes.append(tls == .implicit
                ? "the session is TLS from the first byte (implicit TLS): its \(counts) could not be read"
                : "the session continued under TLS after STARTTLS: its \(counts) could not be read")
        }
        var greeting = builder.greeting
        if greeting == nil {
            greeting = "220 smtptape: greeting not captured"
            notes.insert("the greeting was not captured; a stand-in 220 greeting is used", at: 0)
        }
        let ending: Scenario.Ending
        if steps.last?.verb == .quit {
            ending = .quit
        } else if case .reset(by: .server) = reason {
            ending = .serverClose
        } else if let code = steps.last?.reply?.code ?? greeting?.code, code == 421 {
            ending = .serverClose
        } else {
            ending = .clientClose
        }
        let session = Scenario.Session(
            implicitTLS: builder.implicitTLS,
            incomplete: notes.isEmpty ? nil : notes.joined(separator: "; "),
            greeting: greeting!,
            greetingDelay: builder.implicitTLS ? nil : builder.greetingDelay,
            steps: steps,
            end: ending)
        let info = builder.info
        var origin = origin(info)
        if origin != nil, origin?.end == nil { origin?.end = time.rfc3339 }
        let file = info.source.split(separator: "/").last.map(String.init) ?? info.source
        let messages = steps.filter { $0.kind == .message }.count
        return Scenario(
            name: "\(file) session \(info.id)",
            description: "Recorded by smtptape from \(file): \(info.client) -> \(info.server), \(messages) message\(messages == 1 ? "" : "s").",
            origin: origin,
            sessions: [session])
    }
}
