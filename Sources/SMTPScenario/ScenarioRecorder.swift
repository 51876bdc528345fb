import SMTPCore

/// Builds a scenario from each session it observes (from a capture, later from the proxy).
///
/// It follows the defaults that let a recorded scenario replay against the same client run again
/// (see `Scenarios/FORMAT.md`): the EHLO/HELO argument and the value of `SIZE=` become wildcards,
/// AUTH secrets the placeholder (unless `showSecrets`), BDAT chunk sizes are kept but not
/// compared, and the server's think time before the greeting and each reply is kept as
/// `recorded-greeting-delay` and `recorded-delay` (which a replay honours only when asked), never
/// as `delay` (which always holds). A server that closed the connection instead of answering
/// gives `fault: drop`, one that reset it (RST) `fault: reset`.
///
/// One rule for what cannot be read: a scenario holds the dialogue up to the first point the
/// recording cannot vouch for (bytes missing from the capture, a line cut off, encrypted TLS), and
/// keeps only the steps answered before it. `incomplete` says where and why. So whatever is
/// written is a dialogue that `check` accepts and replay can play.
public final class ScenarioRecorder: SessionObserver {
    final class Builder {
        enum Awaiting {
            case reply(step: Int)
            case chunk(step: Int, last: Bool)
            /// A reply to something left out (AUTH lines from before the capture began).
            case skipped
        }

        let info: SessionInfo
        var greeting: Scenario.Reply?
        /// The greeting came from a recording proxy, not the server (``LineFlags/byProxy``).
        var greetingByProxy = false
        var recordedGreetingDelay: Double?
        var steps: [Scenario.Step] = []
        var stepTimes: [Timestamp] = []
        var awaiting: [Awaiting] = []
        var openMessage: Int?
        var notes: [String] = []
        var implicitTLS = false
        /// Replies before the first command seen, in a capture that began mid-session.
        var earlyReplies = 0
        /// AUTH responses before any challenge, in a capture that began inside an exchange.
        var earlyAuthLines = 0
        /// Why recording stopped, once it has.
        var stopped: String?
        /// Recording stopped where TLS began unreadable: its mode and time, so that the reason,
        /// which the reader gives right after (``tlsUndecryptable(side:reason:time:)``), is said there.
        var stoppedAtTLS: (mode: TLSMode, time: Timestamp)?
        /// A reply recorded as `fault: partial` (-1: the greeting) until the dialogue goes on.
        var unterminatedReply: Int?
        /// The step whose reply was recorded last (-1: the greeting).
        var lastReplied: Int?
        var lastTime: Timestamp

        init(info: SessionInfo) {
            self.info = info
            lastTime = info.start
        }

        /// Changes the message of step `index` in place. The step holds no reference to the
        /// message while `body` runs, so appending to its content does not copy it.
        func updateMessage(at index: Int, _ body: (inout Scenario.Message) -> Void) {
            guard case .message(var message) = steps[index].kind else { return }
            steps[index].kind = .unsolicited
            body(&message)
            steps[index].kind = .message(message)
        }

        /// `+1.234 s`: a time in the session, for notes.
        func offset(_ time: Timestamp) -> String {
            let millis = Int(max(0, time.nanoseconds - info.start.nanoseconds) / 1_000_000)
            let fraction = String(millis % 1000)
            return "+\(millis / 1000).\(String(repeating: "0", count: 3 - fraction.count) + fraction) s"
        }
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

    /// The builder still recording, if any.
    var recording: Builder? {
        guard let builder = current, builder.stopped == nil else { return nil }
        return builder
    }

    /// Ends the recording at this point (`what` happened at `time`): only the steps answered so far
    /// are kept.
    func stop(_ builder: Builder, _ what: String, at time: Timestamp) {
        guard builder.stopped == nil else { return }
        builder.awaiting.removeAll()
        builder.openMessage = nil
        // Replies are paired in order: from the first step left unanswered, nothing after it is sure.
        if let unanswered = builder.steps.firstIndex(where: { $0.reply == nil && $0.fault == nil }) {
            builder.steps.removeSubrange(unanswered...)
            builder.stepTimes.removeSubrange(unanswered...)
        }
        let kept = builder.steps.count
        builder.stopped = "at \(builder.offset(time)) \(what); the scenario keeps the \(kept) step\(kept == 1 ? "" : "s") answered before it"
    }

    /// A reply without its final line ending is `fault: partial` if the connection closed after
    /// it; if the dialogue went on, the peers took it as whole: it gets its line ending, and a note.
    func resolveUnterminatedReply(_ builder: Builder) {
        guard let index = builder.unterminatedReply else { return }
        builder.unterminatedReply = nil
        if index < 0 {
            builder.notes.append("the greeting had no line ending; one was added")
        } else if index < builder.steps.count {
            builder.steps[index].fault = nil
            builder.notes.append("the reply to step \(index + 1) had no line ending; one was added")
        }
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
        guard let builder = recording else { return }
        resolveUnterminatedReply(builder)
        builder.lastTime = time
        if flags.contains(.unterminated) {
            stop(builder, "the client's line was cut off before its end", at: time)
            return
        }
        if verb == .bdat, let chunk = SMTPCommand(line: raw).binaryDataChunk {
            let index: Int
            if let open = builder.openMessage, builder.steps[open].message?.via == .bdat {
                index = open
            } else {
                index = addStep(Scenario.Step(kind: .message(Scenario.Message(content: [], via: .bdat)), reply: nil), time: time, to: builder)
                builder.openMessage = index
            }
            builder.updateMessage(at: index) { $0.chunks.append(chunk.size) }
            builder.awaiting.append(.chunk(step: index, last: chunk.isLast))
            return
        }
        var line = Array(raw)
        if let secret, !showSecrets { line = Secrets.redact(raw, secret: secret) }
        var clientLine = Scenario.ClientLine(bytes: line)
        if let (pattern, match) = Self.defaultMatch(line, verb: verb) {
            clientLine.pattern = String(decoding: pattern.dropLast(2), as: UTF8.self)
            clientLine.match = match
        }
        let index = addStep(Scenario.Step(kind: .command(clientLine), reply: nil), time: time, to: builder)
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
        guard let builder = recording else { return }
        resolveUnterminatedReply(builder)
        builder.lastTime = time
        if flags.contains(.unterminated) {
            stop(builder, "the client's line was cut off before its end", at: time)
            return
        }
        guard builder.steps.last?.reply?.code == 334, builder.awaiting.isEmpty else {
            // No challenge recorded before it: the capture began inside the exchange.
            builder.earlyAuthLines += 1
            builder.awaiting.append(.skipped)
            return
        }
        var line = Array(raw)
        if let secret, !showSecrets { line = Secrets.redact(raw, secret: secret) }
        let index = addStep(Scenario.Step(kind: .auth(Scenario.ClientLine(bytes: line)), reply: nil), time: time, to: builder)
        builder.awaiting.append(.reply(step: index))
    }

    public func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp) {
        guard let builder = recording else { return }
        resolveUnterminatedReply(builder)
        builder.lastTime = time
        if transfer == .bdat {
            guard let open = builder.openMessage else { return }
            builder.updateMessage(at: open) { $0.content.append(contentsOf: raw) }
            return
        }
        let index: Int
        if let open = builder.openMessage, builder.steps[open].message?.via == .data {
            index = open
        } else {
            index = addStep(Scenario.Step(kind: .message(Scenario.Message(content: [])), reply: nil), time: time, to: builder)
            builder.openMessage = index
        }
        builder.updateMessage(at: index) { DotStuffing.unstuff(raw, atLineStart: atLineStart, into: &$0.content) }
        builder.stepTimes[index] = time
    }

    public func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp) {
        guard let builder = recording else { return }
        builder.lastTime = time
        guard complete else {
            // The dialogue ends a message incomplete when it was reset (RSET, QUIT, a new BDAT
            // transaction): the content is not replayable as sent.
            stop(builder, "message \(message) did not reach its end (\(size) bytes recorded)", at: time)
            return
        }
        if transfer == .data {
            let index: Int
            if let open = builder.openMessage, builder.steps[open].message?.via == .data {
                index = open
            } else {
                // An empty message: nothing came between the 354 and the dot.
                index = addStep(Scenario.Step(kind: .message(Scenario.Message(content: [])), reply: nil), time: time, to: builder)
            }
            builder.stepTimes[index] = time
            builder.awaiting.append(.reply(step: index))
        }
        builder.openMessage = nil
    }

    public func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp) {
        guard let builder = recording else { return }
        resolveUnterminatedReply(builder)
        builder.lastTime = time
        var reply = Scenario.Reply(bytes: Array(raw))
        var fault: Scenario.Fault?
        if flags.contains(.unterminated) {
            // A reply without its final line ending, then the connection closed: `fault: partial`
            // plays exactly that. Anything after it cannot be recorded.
            guard raw.last != 0x0A, code != nil else {
                stop(builder, "a server reply was cut off", at: time)
                return
            }
            reply.bytes += [0x0D, 0x0A]
            fault = .partial
        }
        let source: Scenario.ReplySource = flags.contains(.byProxy) ? .proxy : .server
        if context == .greeting {
            builder.greeting = reply
            builder.greetingByProxy = source == .proxy
            builder.recordedGreetingDelay = Self.seconds(from: builder.info.start, to: time)
            builder.lastReplied = -1
            if fault != nil { builder.unterminatedReply = -1 }
            return
        }
        if code == nil, fault == nil, let target = builder.lastReplied {
            // A line without a code goes with the reply before it, as the server sent them.
            if target < 0 {
                builder.greeting?.bytes += reply.bytes
            } else {
                builder.steps[target].reply?.bytes += reply.bytes
            }
            return
        }
        if builder.greeting == nil, builder.steps.isEmpty, context != .authResponse || builder.awaiting.isEmpty {
            // The capture began mid-session: this answers a command it never saw.
            builder.earlyReplies += 1
            if case .skipped = builder.awaiting.first { builder.awaiting.removeFirst() }
            return
        }
        if case .skipped = builder.awaiting.first {
            builder.awaiting.removeFirst()
            builder.earlyReplies += 1
            return
        }
        if code == nil, fault == nil {
            // A line that is not a reply and follows none (a reply the capture cut at its start):
            // what it answered, and so the pairing of what follows, is unknown.
            stop(builder, "a server line that is not a reply could not be placed", at: time)
            return
        }
        guard code != nil, !builder.awaiting.isEmpty else {
            // A reply nothing was waiting for (`421 4.4.2 timeout`): a step of its own.
            let index = addStep(Scenario.Step(kind: .unsolicited, reply: reply), time: time, to: builder)
            builder.steps[index].fault = fault
            builder.steps[index].replyBy = source
            builder.lastReplied = index
            if index > 0 { builder.steps[index].recordedDelay = Self.seconds(from: builder.stepTimes[index - 1], to: time) }
            if fault != nil { builder.unterminatedReply = index }
            return
        }
        if case .reply(let index) = builder.awaiting.first, case .command(let verb) = context,
           let stepVerb = builder.steps[index].verb, stepVerb != verb {
            // The dialogue paired this reply with another command (replies were lost and it
            // resynchronised): the order this recorder pairs by no longer holds.
            stop(builder, "replies could not be paired with their commands", at: time)
            return
        }
        switch builder.awaiting.removeFirst() {
        case .reply(let index):
            builder.steps[index].reply = reply
            builder.steps[index].replyBy = source
            builder.steps[index].recordedDelay = Self.seconds(from: builder.stepTimes[index], to: time)
            builder.steps[index].fault = fault
            builder.lastReplied = index
            if fault != nil { builder.unterminatedReply = index }
        case .chunk(let index, let last):
            if last {
                builder.steps[index].reply = reply
                builder.steps[index].replyBy = source
                builder.steps[index].recordedDelay = Self.seconds(from: builder.stepTimes[index], to: time)
                builder.steps[index].fault = fault
                builder.lastReplied = index
                if fault != nil { builder.unterminatedReply = index }
            } else if fault == nil {
                builder.updateMessage(at: index) { $0.chunkReplies.append(reply) }
            } else {
                stop(builder, "a reply to a BDAT chunk was cut off", at: time)
                return
            }
        case .skipped:
            break
        }
    }

    public func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp) {
        guard let builder = recording else { return }
        stop(builder, "\(raw.count) \(side.name) bytes could not be read", at: time)
    }

    public func gap(side: Side, bytes: Int, time: Timestamp) {
        guard let builder = recording else { return }
        stop(builder, "\(bytes) \(side.name) bytes are missing from the capture", at: time)
    }

    public func tlsStarted(_ start: TLSStart, time: Timestamp) {
        guard let builder = recording else { return }
        if start.mode == .implicit {
            builder.implicitTLS = true
        } else if let last = builder.steps.indices.last(where: { builder.steps[$0].verb == .starttls }) {
            builder.steps[last].startsTLS = true
        }
        if start.state == .encrypted {
            if builder.stopped == nil { builder.stoppedAtTLS = (start.mode, time) }
            stop(builder, Self.unreadableTLS(start.mode, "could not be read"), at: time)
        }
    }

    /// Why a scenario stops where TLS began: `outcome` says what became of the records.
    static func unreadableTLS(_ mode: TLSMode, _ outcome: String) -> String {
        mode == .implicit
            ? "the session is TLS from the first byte (implicit TLS) and \(outcome)"
            : "the session continued under TLS after STARTTLS and \(outcome)"
    }

    public func encrypted(side: Side, bytes: Int, time: Timestamp) {}

    public func tlsUndecryptable(side: Side?, reason: String, time: Timestamp) {
        guard let builder = recording else { return }
        if let (mode, start) = builder.stoppedAtTLS {
            // TLS began and was marked unreadable a moment ago: say why, there.
            builder.stoppedAtTLS = nil
            builder.stopped = nil
            stop(builder, Self.unreadableTLS(mode, "could not be decrypted (\(reason))"), at: start)
        } else {
            let whose = side.map { "the \($0.name)'s TLS records" } ?? "TLS"
            stop(builder, "\(whose) could not be decrypted (\(reason))", at: time)
        }
    }

    public func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) {
        guard let builder = builders.removeValue(forKey: info.id) else { return }
        if current === builder { current = nil }
        onScenario?(info, scenario(builder, summary: summary, reason: reason, time: time))
    }

    /// The first step that cannot follow the reply before it: anything but an AUTH response after
    /// a `334`, anything but the message after DATA's `354`, a DATA message without that `354`.
    static func firstUnpairedStep(_ steps: [Scenario.Step]) -> Int? {
        for index in steps.indices {
            let step = steps[index]
            let previous = index > 0 ? steps[index - 1] : nil
            let code = previous?.fault == nil ? previous?.reply?.code : nil
            let messageDue = previous?.verb == .data && code == 354
            var responseDue = false
            if code == 334, let previous {
                switch previous.kind {
                case .auth, .unsolicited: responseDue = true
                case .command: responseDue = previous.verb == .auth
                case .message: break
                }
            }
            switch step.kind {
            case .message(let message):
                if message.via == .data, !messageDue { return index }
            case .command:
                if messageDue || responseDue { return index }
            case .auth, .unsolicited:
                if messageDue { return index }
            }
        }
        return nil
    }

    func scenario(_ builder: Builder, summary: SessionSummary, reason: SessionEndReason, time: Timestamp) -> Scenario {
        if builder.unterminatedReply == -1 {
            // A scenario has no partial greeting: it gets its line ending, and the note says so.
            builder.notes.append("the greeting had no line ending (the connection closed after it); one was added")
        }
        var notes: [String] = []
        if builder.earlyReplies > 0 || builder.earlyAuthLines > 0 {
            var parts: [String] = []
            if builder.earlyAuthLines > 0 { parts.append("\(builder.earlyAuthLines) AUTH line(s) of an exchange begun before it") }
            if builder.earlyReplies > 0 { parts.append("\(builder.earlyReplies) repl\(builder.earlyReplies == 1 ? "y" : "ies") to commands sent before it") }
            notes.append("the capture began mid-session: " + parts.joined(separator: " and ") + " were left out")
        }
        notes += builder.notes
        var steps = builder.steps
        var ending: Scenario.Ending?
        if let stopped = builder.stopped {
            notes.append(stopped)
        } else if let unanswered = steps.firstIndex(where: { $0.reply == nil && $0.fault == nil }) {
            // Steps the server never answered: it closed the connection instead (`fault: drop`);
            // or the client left without waiting, or the capture ended first (left out).
            if unanswered + 1 < steps.count {
                let count = steps.count - unanswered - 1
                notes.append("\(count) step\(count == 1 ? "" : "s") the client sent after step \(unanswered + 1), which got no reply, \(count == 1 ? "was" : "were") left out")
                steps.removeSubrange((unanswered + 1)...)
            }
            switch reason.endedBy {
            case .server:
                // Closed (FIN) or aborted (RST) instead of answering.
                steps[unanswered].fault = reason == .reset(by: .server) ? .reset : .drop
                steps[unanswered].recordedDelay = nil
                ending = .serverClose
            case .client where steps[unanswered].verb == .quit:
                // The client closed without waiting for the reply to QUIT: it does not need one.
                steps[unanswered].fault = .drop
                notes.append("the client closed without waiting for the reply to QUIT")
            case .client:
                steps.removeLast()
                notes.append("the client closed before the server answered step \(unanswered + 1), which was left out")
                ending = .clientClose
            case nil:
                steps.removeLast()
                notes.append("the capture ended before the server answered step \(unanswered + 1), which was left out")
            }
        } else if reason.endedBy == nil, steps.last?.endsSession != true {
            // The recording stopped with the connection still open (the capture ended, or was
            // damaged, or the connection went silent): what the peers did next is not known.
            notes.append("\(reason.phrase)")
        }
        // A capture that shifted replies (mid-session, with losses) can pair them so that a step
        // does not follow from the reply before it: keep only the steps before that point.
        if let broken = Self.firstUnpairedStep(steps) {
            notes.append("from step \(broken + 1) on, replies could not be paired with their commands; the scenario keeps the \(broken) step\(broken == 1 ? "" : "s") before it")
            steps.removeSubrange(broken...)
        }
        // Steps after a QUIT (the dialogue went on after it) cannot be replayed.
        if let quit = steps.firstIndex(where: { $0.endsSession }), quit + 1 < steps.count {
            notes.append("\(steps.count - quit - 1) step(s) after the session ended were left out")
            steps.removeSubrange((quit + 1)...)
        }
        var greeting = builder.greeting
        if greeting == nil {
            greeting = "220 smtptape: greeting not captured"
            notes.insert("the greeting was not captured; a stand-in 220 greeting is used", at: 0)
        }
        var session = Scenario.Session(
            implicitTLS: builder.implicitTLS,
            incomplete: notes.isEmpty ? nil : notes.joined(separator: "; "),
            greeting: greeting!,
            greetingBy: builder.greetingByProxy ? .proxy : .server,
            recordedGreetingDelay: builder.implicitTLS ? nil : builder.recordedGreetingDelay,
            steps: steps)
        session.end = ending ?? (reason.endedBy == .server ? .serverClose : session.inferredEnd)
        if steps.last?.fault != nil {
            session.end = .serverClose
        } else if steps.last?.verb == .quit, steps.last?.reply != nil {
            session.end = .quit
        }
        let info = builder.info
        var origin = origin(info)
        if origin != nil, origin?.end == nil { origin?.end = time.rfc3339 }
        let file = info.source.split(separator: "/").last.map(String.init) ?? info.source
        let messages = steps.filter { $0.message != nil }.count
        return Scenario(
            name: "\(file) session \(info.id)",
            description: "Recorded by smtptape from \(file): \(info.client) -> \(info.server), \(messages) message\(messages == 1 ? "" : "s").",
            origin: origin,
            sessions: [session])
    }
}
