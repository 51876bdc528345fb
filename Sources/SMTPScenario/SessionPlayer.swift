import SMTPCore

/// Plays one scenario session as the server: client bytes in, what to do out.
///
/// A pure value with no clock and no I/O: the replay server runs it for each connection (and
/// carries out its actions on the event loop), and `transcript SCENARIO` runs it over the
/// scenario's own client side, so faults, delays, BDAT chunk replies, mismatches and the verdict
/// are decided here and nowhere else. The client's bytes are read by ``SMTPServerDialogue``, whose
/// mode follows the replies this player gives.
public struct SessionPlayer: Sendable {
    /// Something the server does, in order. A ``pause(_:)`` delays everything after it.
    public enum Action: Sendable, Hashable {
        /// Wait this many seconds before the next action.
        case pause(Double)
        /// Write these bytes.
        case send([UInt8])
        /// Begin TLS: everything written before is in the clear, everything after encrypted; the
        /// caller calls ``tlsStarted()`` once the TLS layer is in place.
        case startTLS
        /// Close the connection (FIN) once what was written has gone.
        case close
        /// Abort the connection with a TCP RST (`fault: reset`).
        case reset
    }

    /// How replies and mismatches are played.
    public struct Options: Sendable, Hashable {
        /// `--lenient`: unscripted commands get default replies and do not fail the session; a
        /// message that differs gets the scripted reply and a note.
        public var lenient: Bool
        /// `--on-mismatch close`: close the connection after the mismatch reply (by default the
        /// script stays at the step so that the client may correct itself).
        public var closeOnMismatch: Bool
        /// The reply to a mismatch, verbatim (CRLF-terminated); by default a `503 5.5.1` that
        /// names the expected and the received line.
        public var mismatchReply: [UInt8]?
        /// `--timing recorded`: also wait the think times `extract` recorded, divided by `speed`.
        public var recordedTiming: Bool
        public var speed: Double
        /// Keep AUTH credentials in mismatch replies and the verdict.
        public var showSecrets: Bool
        public var limits: SMTPServerDialogue.Limits

        public init(lenient: Bool = false, closeOnMismatch: Bool = false, mismatchReply: [UInt8]? = nil,
                    recordedTiming: Bool = false, speed: Double = 1, showSecrets: Bool = false,
                    limits: SMTPServerDialogue.Limits = .init()) {
            self.lenient = lenient
            self.closeOnMismatch = closeOnMismatch
            self.mismatchReply = mismatchReply
            self.recordedTiming = recordedTiming
            self.speed = speed
            self.showSecrets = showSecrets
            self.limits = limits
        }
    }

    enum Phase: Sendable, Equatable {
        case running
        /// STARTTLS was accepted: bytes before the TLS layer is in place are plaintext to drop.
        case awaitingTLS
        /// `fault: stall`: read on, answer nothing.
        case stalled
        case ended
    }

    /// The session with its patterns compiled (once per scenario, not per connection or line).
    public let compiled: CompiledSession
    public var session: Scenario.Session { compiled.session }
    /// 1-based number of the session in its scenario.
    public let scenarioSession: Int
    public let scenarioName: String
    public let options: Options
    var dialogue: SMTPServerDialogue
    var phase = Phase.running
    /// The next step to play.
    var index = 0
    var results: [Verdict.StepResult]
    /// Lines the script does not hold, each after the step index it followed.
    var unexpected: [(after: Int, result: Verdict.StepResult)] = []
    var notes: [String] = []
    var advertised: Set<String> = []
    var mailFrom: String?
    var rcptTo: [String] = []
    var messages: [Verdict.ReceivedMessage] = []
    var sawQuit = false
    var interrupted = false
    /// BDAT chunks of the current message step seen so far.
    var chunkIndex = 0
    var droppedAfterSTARTTLS = 0
    /// The client is the script itself (``ScenarioPlayback``): every line is the current step's,
    /// even one that does not match its own regular expression.
    var followsScript = false

    public init(session: CompiledSession, scenarioName: String, scenarioSession: Int = 1, options: Options = Options()) {
        self.compiled = session
        self.scenarioName = scenarioName
        self.scenarioSession = scenarioSession
        self.options = options
        self.dialogue = SMTPServerDialogue(limits: options.limits)
        self.results = session.expected.enumerated().map { index, expected in
            Verdict.StepResult(step: index + 1, status: .missing, expected: expected)
        }
    }

    /// Compiles `session`'s patterns first (see ``CompiledSession``).
    public init(session: Scenario.Session, scenarioName: String, scenarioSession: Int = 1, options: Options = Options()) throws(ScenarioPatternError) {
        self.init(session: try CompiledSession(session), scenarioName: scenarioName, scenarioSession: scenarioSession, options: options)
    }

    /// Whether the session is over for the server (it closed, or the client quit).
    public var isFinished: Bool { phase == .ended }

    // MARK: Driving

    /// The greeting, and any steps the server plays before the client speaks.
    /// - Parameter greetingSent: the greeting already went out (the session was chosen by the
    ///   client's first command, after a greeting they all share).
    public mutating func start(greetingSent: Bool = false) -> [Action] {
        var actions: [Action] = []
        if !greetingSent {
            let wait = wait(session.greetingDelay, recorded: session.recordedGreetingDelay)
            if wait > 0 { actions.append(.pause(wait)) }
            actions.append(.send(session.greeting.bytes))
        }
        if session.greeting.code == 421 {
            phase = .ended
            actions.append(.close)
            return actions
        }
        playUnsolicited(into: &actions)
        return actions
    }

    /// Bytes from the client.
    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> [Action] {
        switch phase {
        case .ended, .stalled:
            return []
        case .awaitingTLS:
            droppedAfterSTARTTLS += bytes.count
            return []
        case .running:
            break
        }
        dialogue.receive(bytes)
        var actions: [Action] = []
        while phase == .running, let event = dialogue.next() {
            let code = handle(event, into: &actions)
            let dropped = dialogue.replied(code ?? 0)
            droppedAfterSTARTTLS += dropped
        }
        return actions
    }

    public mutating func receive(_ bytes: [UInt8]) -> [Action] {
        bytes.withUnsafeBytes { receive($0) }
    }

    /// The TLS layer is in place (after ``Action/startTLS``): what comes now is the client's
    /// decrypted bytes, and the dialogue starts afresh (RFC 3207: the client says EHLO again).
    public mutating func tlsStarted() {
        guard phase == .awaitingTLS else { return }
        phase = .running
        advertised = []
        if droppedAfterSTARTTLS > 0 {
            note("the client sent \(droppedAfterSTARTTLS) bytes after STARTTLS before TLS began: they were dropped, not executed (RFC 3207 4.2)")
        }
    }

    /// The client closed the connection.
    public mutating func clientClosed() {
        guard phase != .ended else { return }
        if !sawQuit, session.end == .quit || index < session.steps.count {
            note("the client closed the connection without QUIT")
        }
        phase = .ended
    }

    /// Nothing came from the client for the idle timeout: `421` and close (RFC 5321 4.5.3.2),
    /// or, on a stalled step, just close.
    public mutating func idleTimedOut(after seconds: Double) -> [Action] {
        guard phase != .ended else { return [] }
        let stalled = phase == .stalled
        phase = .ended
        if stalled {
            note("the client waited on the stalled step until the server's idle timeout (\(Self.seconds(seconds))) instead of giving up first")
            return [.close]
        }
        note("the client sent nothing for \(Self.seconds(seconds)) (the idle timeout): the server said 421 and closed")
        return [.send(Array("421 4.4.2 smtptape: idle timeout, closing connection\r\n".utf8)), .close]
    }

    /// The connection failed (a TLS handshake that did not complete, a reset by the client).
    /// Once the session is over (`QUIT` answered, the server closed) a failure says nothing about
    /// the dialogue: smtplib, swaks and others close TLS without close_notify after the `221`.
    public mutating func failed(_ reason: String) {
        guard phase != .ended else { return }
        note(reason)
        phase = .ended
    }

    /// The server is shutting down: `421` and close; the steps not played are `interrupted`.
    public mutating func interrupt() -> [Action] {
        guard phase != .ended else { return [] }
        phase = .ended
        interrupted = true
        return [.send(Array("421 4.3.2 smtptape: server shutting down\r\n".utf8)), .close]
    }

    // MARK: Verdict

    /// The session's verdict so far (final once the session ended).
    public func verdict(session number: Int, time: String, client: String) -> Verdict {
        var steps: [Verdict.StepResult] = []
        for (index, result) in results.enumerated() {
            var result = result
            if interrupted, result.status == .missing { result.status = .interrupted }
            steps.append(result)
            steps += unexpected.filter { $0.after == index }.map(\.result)
        }
        steps.insert(contentsOf: unexpected.filter { $0.after < 0 }.map(\.result), at: 0)
        steps += unexpected.filter { $0.after >= results.count }.map(\.result)
        return Verdict(session: number, time: time, client: client, scenario: scenarioName, scenarioSession: scenarioSession,
                       steps: steps, messages: messages, notes: notes)
    }

    // MARK: Events

    var currentStep: Scenario.Step? { index < session.steps.count ? session.steps[index] : nil }

    /// Answers one event; returns the code of the reply (nil when none was sent).
    mutating func handle(_ event: SMTPServerDialogue.Event, into actions: inout [Action]) -> Int? {
        switch event {
        case .lineTooLong(let length):
            note("a line of \(length) octets or more, over the \(options.limits.commandLine)-octet limit (RFC 5321 4.5.3.1.4), was answered 500")
            record(unexpected: "(a line of \(length) octets)", tolerated: options.lenient)
            return send("500 5.5.2 smtptape: line too long\r\n", into: &actions)
        case .command(let line), .authResponse(let line):
            observe(line)
            if case .command = event { track(line) }
            if let step = currentStep, followsScript || accepts(line: line.bytes, auth: isAuth(event), step: index) {
                return play(step, actual: display(line, auth: isAuth(event)), into: &actions)
            }
            return stray(line: line, auth: isAuth(event), into: &actions)
        case .message(let message):
            observeMessage(message)
            return receivedMessage(message, into: &actions)
        case .chunk(let chunk):
            observe(chunk.command)
            if !advertised.contains("CHUNKING") {
                note("BDAT was used although the server did not advertise CHUNKING (RFC 3030)")
            }
            return receivedChunk(chunk, into: &actions)
        }
    }

    /// Whether step `step` takes `line`: a command step a command, an AUTH step an AUTH response.
    func accepts(line: [UInt8], auth: Bool, step: Int) -> Bool {
        switch session.steps[step].kind {
        case .command: !auth && compiled.accepts(line: line, step: step)
        case .auth: auth && compiled.accepts(line: line, step: step)
        case .message, .unsolicited: false
        }
    }

    func isAuth(_ event: SMTPServerDialogue.Event) -> Bool {
        if case .authResponse = event { return true }
        return false
    }

    /// Conformance notes on a line.
    mutating func observe(_ line: SMTPServerDialogue.ClientLine) {
        if line.flags.contains(.bareLF) { note("a line ended in a bare LF instead of CRLF (RFC 5321 2.3.8)") }
        if line.flags.contains(.overLength) { note("a command line was longer than 512 octets (RFC 5321 4.5.3.1.4)") }
        if line.pipelined, !advertised.contains("PIPELINING") {
            note("a command was sent before the reply to the previous one although PIPELINING was not advertised (RFC 2920)")
        }
    }

    mutating func observeMessage(_ message: SMTPServerDialogue.Message) {
        if message.bareLF { note("message content had a bare LF instead of CRLF (RFC 5321 2.3.8)") }
        if message.overLength { note("a message line was longer than 1000 octets (RFC 5321 4.5.3.1.6)") }
    }

    /// The envelope, for the messages received.
    mutating func track(_ line: SMTPServerDialogue.ClientLine) {
        switch line.verb {
        case .mail:
            mailFrom = SMTPCommand(line: line.bytes).mailPath.map { String(decoding: $0.address.bytes, as: UTF8.self) }
            rcptTo = []
        case .rcpt:
            if let path = SMTPCommand(line: line.bytes).mailPath { rcptTo.append(String(decoding: path.address.bytes, as: UTF8.self)) }
        case .rset, .helo, .ehlo:
            mailFrom = nil
            rcptTo = []
        case .quit:
            sawQuit = true
        default:
            break
        }
    }

    mutating func receivedMessage(_ message: SMTPServerDialogue.Message, into actions: inout [Action]) -> Int? {
        guard let step = currentStep, case .message(let expected) = step.kind, expected.via == .data else {
            return strayMessage(message, description: "a message via DATA (\(message.size) octets)", into: &actions)
        }
        return playMessage(step, expected: expected, message, into: &actions)
    }

    mutating func receivedChunk(_ chunk: SMTPServerDialogue.Chunk, into actions: inout [Action]) -> Int? {
        let command = String(decoding: SMTPLine.content(chunk.command.bytes), as: UTF8.self)
        guard let step = currentStep, case .message(let expected) = step.kind, expected.via == .bdat else {
            if let message = chunk.message {
                return strayMessage(message, description: "a message via BDAT (\(message.size) octets)", into: &actions)
            }
            if options.lenient {
                record(unexpected: command, tolerated: true)
                return send("250 2.0.0 smtptape: chunk received\r\n", into: &actions)
            }
            return mismatch(actual: command, actualBytes: chunk.command.bytes, verb: .bdat, into: &actions)
        }
        guard let message = chunk.message else {
            // A chunk before the last: its recorded reply, or a plain 250.
            let reply = chunkIndex < expected.chunkReplies.count ? expected.chunkReplies[chunkIndex].bytes : Array("250 2.0.0 OK\r\n".utf8)
            chunkIndex += 1
            results[index].attempts.append(command)
            actions.append(.send(reply))
            return Scenario.Reply(bytes: reply).code
        }
        chunkIndex = 0
        return playMessage(step, expected: expected, message, into: &actions)
    }

    mutating func playMessage(_ step: Scenario.Step, expected: Scenario.Message, _ message: SMTPServerDialogue.Message, into actions: inout [Action]) -> Int? {
        let actual = "message (\(message.transfer == .data ? "DATA" : "BDAT"), \(message.size) octets)"
        if message.tooLarge {
            results[index].attempts.append(actual)
            results[index].actual = actual
            results[index].status = .mismatched
            index += 1
            note("a message of \(message.size) octets, over the \(options.limits.messageSize)-octet limit, was refused with 552")
            let code = send("552 5.3.4 smtptape: message size exceeds the limit\r\n", into: &actions)
            keep(message, code: code)
            return code
        }
        if followsScript || compiled.accepts(message: message.content, step: index) {
            let code = play(step, actual: actual, into: &actions)
            keep(message, code: code)
            return code
        }
        if message.transfer == .data, compiled.accepts(message: message.wire, step: index) {
            note("the message differs from the script only in dot-stuffing: lines that begin with '.' were not doubled (RFC 5321 4.5.2)")
        }
        let difference = Self.firstDifference(expected: expected.content, actual: message.content, exact: expected.match != .normalized)
        if options.lenient {
            note("the message at step \(index + 1) differs from the script (\(difference)); it got the scripted reply")
            let code = play(step, actual: actual, into: &actions)
            keep(message, code: code)
            return code
        }
        results[index].attempts.append(actual)
        results[index].actual = actual + ": " + difference
        results[index].status = .mismatched
        index += 1
        chunkIndex = 0
        let code = send(Self.replyLine("554 5.6.0 smtptape: message differs from step \(index): \(difference)"), into: &actions)
        keep(message, code: code)
        if options.closeOnMismatch { end(with: .close, into: &actions) }
        return code
    }

    mutating func keep(_ message: SMTPServerDialogue.Message, code: Int?) {
        messages.append(Verdict.ReceivedMessage(mailFrom: mailFrom, rcptTo: rcptTo, content: message.content, size: message.size,
                                                transfer: message.transfer, replyCode: code))
        if code.map({ $0 / 100 == 2 }) ?? false {
            mailFrom = nil
            rcptTo = []
        }
    }

    /// A message where the script does not expect one.
    mutating func strayMessage(_ message: SMTPServerDialogue.Message, description: String, into actions: inout [Action]) -> Int? {
        if options.lenient {
            record(unexpected: description, tolerated: true)
            let code = send("250 2.0.0 smtptape: message accepted\r\n", into: &actions)
            keep(message, code: code)
            return code
        }
        if currentStep == nil {
            record(unexpected: description, tolerated: false)
            let code = send("554 5.5.1 smtptape: unexpected message: the script has ended\r\n", into: &actions)
            keep(message, code: code)
            return code
        }
        let code = mismatch(actual: description, actualBytes: [], verb: nil, into: &actions)
        keep(message, code: code)
        return code
    }

    // MARK: Playing a step

    /// Plays the current step (it matched): its reply, delay and fault; then moves on.
    mutating func play(_ step: Scenario.Step, actual: String, into actions: inout [Action]) -> Int? {
        if results[index].status == .missing {
            results[index].status = .passed
            results[index].actual = actual
        }
        results[index].attempts.append(actual)
        index += 1
        let code = answer(step, into: &actions)
        playUnsolicited(into: &actions)
        return code
    }

    /// The step's reply (after its delay), or its fault.
    mutating func answer(_ step: Scenario.Step, into actions: inout [Action]) -> Int? {
        let wait = delay(of: step)
        if wait > 0 { actions.append(.pause(wait)) }
        switch step.fault {
        case .drop?:
            end(with: .close, into: &actions)
            return nil
        case .reset?:
            end(with: .reset, into: &actions)
            return nil
        case .stall?:
            // Read on and answer nothing, until the client gives up or the idle timeout.
            phase = .stalled
            return nil
        case .partial?:
            var bytes = step.reply?.bytes ?? []
            if bytes.last == 0x0A { bytes.removeLast() }
            if bytes.last == 0x0D { bytes.removeLast() }
            actions.append(.send(bytes))
            end(with: .close, into: &actions)
            return step.reply?.code
        case nil:
            break
        }
        guard let reply = step.reply else {
            end(with: .close, into: &actions)
            return nil
        }
        actions.append(.send(reply.bytes))
        let code = reply.code
        if step.verb == .ehlo, code == 250 { advertise(reply) }
        if step.startsTLS || (step.verb == .starttls && code == 220) {
            actions.append(.startTLS)
            phase = .awaitingTLS
        } else if code == 221 || code == 421 {
            end(with: .close, into: &actions)
        }
        return code
    }

    /// Steps in which the server speaks first, played right away.
    mutating func playUnsolicited(into actions: inout [Action]) {
        while phase == .running, let step = currentStep, case .unsolicited = step.kind {
            results[index].status = .passed
            index += 1
            _ = answer(step, into: &actions)
        }
    }

    /// What to wait before a step's reply: its `delay` always, its `recorded-delay` with
    /// `--timing recorded` (divided by `--speed`).
    func delay(of step: Scenario.Step) -> Double {
        wait(step.delay, recorded: step.recordedDelay)
    }

    func wait(_ delay: Double?, recorded: Double?) -> Double {
        (delay ?? 0) + (options.recordedTiming ? (recorded ?? 0) / options.speed : 0)
    }

    mutating func end(with action: Action, into actions: inout [Action]) {
        phase = .ended
        actions.append(action)
    }

    /// The extensions an EHLO reply the server sent advertises.
    mutating func advertise(_ reply: Scenario.Reply) {
        let lines = reply.bytes.split(separator: 0x0A).map { line in
            Array(line).withUnsafeBytes { SMTPReplyLine(line: SMTPLine.content($0)) }
        }
        advertised = Set(EHLOCapabilities(reply: SMTPReply(lines: lines))?.capabilities.map { $0.keyword.uppercased() } ?? [])
    }

    // MARK: Lines the script does not expect

    /// A line that does not match the current step (or comes after the last).
    mutating func stray(line: SMTPServerDialogue.ClientLine, auth: Bool, into actions: inout [Action]) -> Int? {
        let actual = display(line, auth: auth)
        if options.lenient {
            record(unexpected: actual, tolerated: true)
            return defaultReply(line, auth: auth, into: &actions)
        }
        if currentStep == nil {
            record(unexpected: actual, tolerated: false)
            if line.verb == .quit, !auth {
                let code = send("221 2.0.0 smtptape: bye (the script had ended)\r\n", into: &actions)
                end(with: .close, into: &actions)
                return code
            }
            return send(Self.replyLine("503 5.5.1 smtptape: unexpected \(Self.quoted(actual)): the script has ended"), into: &actions)
        }
        if line.verb == .quit, !auth {
            // The client wants to leave: let it. With a QUIT later in the script, the steps in
            // between are missing and that QUIT answers; without one, this step failed.
            if let quit = session.steps.indices.dropFirst(index + 1).first(where: { session.steps[$0].verb == .quit }) {
                index = quit
                return play(session.steps[quit], actual: actual, into: &actions)
            }
            _ = mismatch(actual: actual, actualBytes: line.bytes, verb: .quit, replying: false, into: &actions)
            let code = send("221 2.0.0 smtptape: bye (the script expected more)\r\n", into: &actions)
            end(with: .close, into: &actions)
            return code
        }
        return mismatch(actual: actual, actualBytes: line.bytes, verb: auth ? nil : line.verb, into: &actions)
    }

    /// Records a failed attempt at the current step and answers it (strict).
    mutating func mismatch(actual: String, actualBytes: [UInt8], verb: SMTPVerb?, replying: Bool = true, into actions: inout [Action]) -> Int? {
        let step = index
        if results[step].status != .mismatched {
            // The first line that strayed is the one the report names; later attempts are kept.
            results[step].status = .mismatched
            results[step].actual = actual
            results[step].closest = closest(to: actualBytes, verb: verb)
        }
        results[step].attempts.append(actual)
        guard replying else { return nil }
        let code: Int?
        if let custom = options.mismatchReply {
            code = send(custom, into: &actions)
        } else {
            let expected = results[step].expected ?? ""
            code = send(Self.replyLine("503 5.5.1 smtptape: expected \(Self.quoted(expected)) (step \(step + 1)), got \(Self.quoted(actual))"), into: &actions)
        }
        if options.closeOnMismatch { end(with: .close, into: &actions) }
        return code
    }

    mutating func record(unexpected actual: String, tolerated: Bool) {
        unexpected.append((after: index - 1, result: Verdict.StepResult(step: nil, status: .unexpected, actual: actual, attempts: [actual], tolerated: tolerated)))
    }

    /// The step that would have taken `line`: one that accepts it (same verb first), else the
    /// one of the same verb nearest by edit distance, else the nearest of all.
    func closest(to line: [UInt8], verb: SMTPVerb?) -> Verdict.Closest? {
        guard !line.isEmpty else { return nil }
        let steps = session.steps
        let candidates = steps.indices.filter { $0 != index && steps[$0].clientLine != nil }
        if let match = candidates.first(where: { accepts(line: line, auth: verb == nil, step: $0) }) {
            return Verdict.Closest(step: match + 1, expected: compiled.expected[match])
        }
        let sameVerb = candidates.filter { verb != nil && steps[$0].verb == verb }
        let pool = sameVerb.isEmpty ? candidates.filter { steps[$0].verb != nil } : sameVerb
        let content = SMTPLine.content(line)
        func distance(_ step: Int) -> Int { EditDistance.between(steps[step].clientLine?.content ?? [], content) }
        guard let best = pool.min(by: { distance($0) < distance($1) }) else { return nil }
        // A step of another verb is only near when most of the line is the same.
        if sameVerb.isEmpty, distance(best) * 2 > max(content.count, steps[best].clientLine?.content.count ?? 0) { return nil }
        return Verdict.Closest(step: best + 1, expected: compiled.expected[best])
    }

    /// Protocol-correct replies for lines the script does not hold (`--lenient`).
    mutating func defaultReply(_ line: SMTPServerDialogue.ClientLine, auth: Bool, into actions: inout [Action]) -> Int? {
        if auth {
            return send("235 2.7.0 smtptape: authentication accepted\r\n", into: &actions)
        }
        switch line.verb {
        case .helo: return send("250 smtptape\r\n", into: &actions)
        case .ehlo:
            let reply = Scenario.Reply("250-smtptape\n250-PIPELINING\n250-8BITMIME\n250-SMTPUTF8\n250-CHUNKING\n250-SIZE \(options.limits.messageSize)\n250 ENHANCEDSTATUSCODES")
            advertise(reply)
            actions.append(.send(reply.bytes))
            return 250
        case .mail: return send("250 2.1.0 smtptape: sender ok\r\n", into: &actions)
        case .rcpt: return send("250 2.1.5 smtptape: recipient ok\r\n", into: &actions)
        case .data: return send("354 smtptape: end data with <CR><LF>.<CR><LF>\r\n", into: &actions)
        case .rset, .noop: return send("250 2.0.0 smtptape: ok\r\n", into: &actions)
        case .vrfy: return send("252 2.1.5 smtptape: cannot verify\r\n", into: &actions)
        case .help: return send("214 2.0.0 smtptape replays scenarios\r\n", into: &actions)
        case .quit:
            let code = send("221 2.0.0 smtptape: bye\r\n", into: &actions)
            end(with: .close, into: &actions)
            return code
        case .auth:
            if case .none = SMTPCommand(line: line.bytes).authArgument {
                return send("334 \r\n", into: &actions)
            }
            return send("235 2.7.0 smtptape: authentication accepted\r\n", into: &actions)
        case .starttls: return send("454 4.7.0 smtptape: TLS not available here\r\n", into: &actions)
        case .expn: return send("502 5.5.1 smtptape: EXPN not supported\r\n", into: &actions)
        case .bdat: return send("501 5.5.4 smtptape: bad BDAT argument\r\n", into: &actions)
        case .unknown: return send("500 5.5.2 smtptape: command not recognized\r\n", into: &actions)
        }
    }

    @discardableResult
    mutating func send(_ text: String, into actions: inout [Action]) -> Int? {
        send(Array(text.utf8), into: &actions)
    }

    @discardableResult
    mutating func send(_ bytes: [UInt8], into actions: inout [Action]) -> Int? {
        actions.append(.send(bytes))
        return Scenario.Reply(bytes: bytes).code
    }

    mutating func note(_ text: String) {
        if !notes.contains(text) { notes.append(text) }
    }

    // MARK: Text

    /// A line as the verdict shows it: without its ending, AUTH credentials redacted unless shown.
    func display(_ line: SMTPServerDialogue.ClientLine, auth: Bool) -> String {
        let content = line.content
        if options.showSecrets { return Self.text(content) }
        if auth {
            return content == [0x2A] ? "*" : Secrets.placeholder
        }
        if line.verb == .auth, let range = SMTPCommand(line: line.bytes).authSecretRange {
            let redacted = content.withUnsafeBytes { raw -> [UInt8] in
                let offset = min(SMTPCommand.verbEnd(raw) + 1, raw.count)
                let secret = (range.lowerBound + offset)..<min(range.upperBound + offset, raw.count)
                return secret.isEmpty ? Array(raw) : Secrets.redact(raw, secret: secret)
            }
            return Self.text(redacted)
        }
        return Self.text(content)
    }

    /// What a step expects, as the scenario writes it.
    static func expected(_ step: Scenario.Step) -> String {
        switch step.kind {
        case .command(let line), .auth(let line):
            return line.pattern ?? text(line.content)
        case .message(let message):
            return "message (\(message.via == .data ? "DATA" : "BDAT"), \(message.content.count) octets)"
        case .unsolicited:
            return "(the server speaks first: \(text(SMTPLine.content(step.reply?.bytes ?? []))))"
        }
    }

    /// Bytes as readable text: printable UTF-8 kept, other bytes escaped as `\xNN`.
    static func text(_ bytes: [UInt8]) -> String {
        ByteString(bytes).description
    }

    static func quoted(_ text: String) -> String {
        "'" + (text.count > 120 ? String(text.prefix(117)) + "..." : text) + "'"
    }

    /// One reply line, kept within the 512-octet limit.
    static func replyLine(_ text: String) -> [UInt8] {
        var bytes = Array(text.utf8.filter { $0 != 0x0D && $0 != 0x0A })
        if bytes.count > 510 { bytes = Array(bytes.prefix(507)) + Array("...".utf8) }
        return bytes + [0x0D, 0x0A]
    }

    static func seconds(_ value: Double) -> String {
        value == value.rounded() ? "\(Int(value)) s" : "\(value) s"
    }

    /// Where two messages first differ, as `line N: expected '...', got '...'`.
    static func firstDifference(expected: [UInt8], actual: [UInt8], exact: Bool) -> String {
        let want = exact ? expected : MessageNormalizer.normalize(expected)
        let got = exact ? actual : MessageNormalizer.normalize(actual)
        let wantLines = MessageNormalizer.split(want), gotLines = MessageNormalizer.split(got)
        for number in 0..<max(wantLines.count, gotLines.count) {
            let a = number < wantLines.count ? wantLines[number] : nil
            let b = number < gotLines.count ? gotLines[number] : nil
            if a != b {
                let show = { (line: [UInt8]?) in line.map { quoted(text(SMTPLine.content($0 + [0x0A]))) } ?? "the end" }
                return "line \(number + 1): expected \(show(a)), got \(show(b))"
            }
        }
        return "they differ"
    }
}

extension SMTPServerDialogue.Limits {
    /// These limits, raised where `sessions` need more: a line or a message the script itself
    /// holds (a recorded over-long command, a large message file) is never refused as too long.
    public func fitting(_ sessions: [Scenario.Session]) -> SMTPServerDialogue.Limits {
        var limits = self
        for step in sessions.lazy.flatMap(\.steps) {
            if let line = step.clientLine { limits.commandLine = Swift.max(limits.commandLine, line.bytes.count) }
            if let message = step.message { limits.messageSize = Swift.max(limits.messageSize, message.content.count) }
        }
        return limits
    }
}
