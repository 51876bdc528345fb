import SMTPCore

/// Plays a scenario's sessions as the bytes a client and server would exchange, through the same
/// ``SMTPDialogue`` that reads captures, so that scenarios are rendered (and later replayed and
/// compared) with the one grammar.
public enum ScenarioPlayback {
    /// One write on the wire.
    public struct Write: Sendable {
        /// Who writes.
        public var side: Side
        /// The bytes on the wire.
        public var bytes: [UInt8]
        /// Seconds since the session began.
        public var time: Double
    }

    /// The bytes of one session, in order: greeting, then each step's client part and reply.
    /// A server's waits count both as written (`delay`) and as recorded (`recorded-delay`): a
    /// transcript shows the session as it went.
    public static func writes(_ session: Scenario.Session) -> [Write] {
        var writes: [Write] = []
        var clock = (session.greetingDelay ?? 0) + (session.recordedGreetingDelay ?? 0)
        writes.append(Write(side: .server, bytes: session.greeting.bytes, time: clock))
        for step in session.steps {
            switch step.kind {
            case .unsolicited:
                break
            case .command(let line), .auth(let line):
                writes.append(Write(side: .client, bytes: line.bytes, time: clock))
            case .message(let message) where message.via == .data:
                var wire = DotStuffing.stuff(message.content, keepingBareLF: true)
                if step.fault == .drop || step.fault == .reset {
                    // The server closes once the content is in, before the `.` line.
                    wire.removeLast(3)
                    if message.content.last != 0x0A, !message.content.isEmpty { wire.removeLast(2) }
                }
                writes.append(Write(side: .client, bytes: wire, time: clock))
            case .message(let message):
                // BDAT: the recorded chunk sizes if they still fit the content, else one chunk.
                let content = message.content
                let fits = !message.chunks.isEmpty && message.chunks.allSatisfy { $0 >= 0 && $0 <= content.count }
                    && message.chunks.reduce(0) { $0 &+ $1 } == content.count
                let sizes = fits ? message.chunks : [content.count]
                var offset = 0
                for (index, size) in sizes.enumerated() {
                    let last = index == sizes.count - 1
                    writes.append(Write(side: .client, bytes: Array("BDAT \(size)\(last ? " LAST" : "")\r\n".utf8) + content[offset..<(offset + size)], time: clock))
                    offset += size
                    if !last {
                        let reply = index < message.chunkReplies.count ? message.chunkReplies[index] : "250 2.0.0 OK"
                        writes.append(Write(side: .server, bytes: reply.bytes, time: clock))
                    }
                }
            }
            clock += (step.delay ?? 0) + (step.recordedDelay ?? 0)
            if var reply = step.reply?.bytes {
                if step.fault == .partial, reply.last == 0x0A {
                    reply.removeLast()
                    if reply.last == 0x0D { reply.removeLast() }
                }
                writes.append(Write(side: .server, bytes: reply, time: clock))
            }
        }
        return writes
    }

    /// Why a session played from a scenario ends: as its `end` says, except after a fault: the
    /// server closed (`drop`, `partial`), reset the connection (`reset`), or, after a `stall`,
    /// whoever `end` names gave up waiting.
    public static func endReason(_ session: Scenario.Session) -> SessionEndReason {
        switch session.steps.last?.fault {
        case .drop, .partial: return .closed(by: .server)
        case .reset: return .reset(by: .server)
        case .stall, nil: break
        }
        return switch session.end {
        case .quit: .closed(by: .server)
        case .clientClose: .closed(by: .client)
        case .serverClose: .closed(by: .server)
        }
    }

    /// Renders the scenario's sessions to an observer, numbered from `firstSessionID`. Returns the
    /// number of sessions.
    @discardableResult
    public static func render(_ scenario: Scenario, source: String, firstSessionID: Int, into observer: some SessionObserver) -> Int {
        let start = scenario.origin?.start.flatMap(Timestamp.init(rfc3339:))
        let base = start ?? Timestamp(nanoseconds: 0)
        let endpoints = scenario.origin?.connection?.components(separatedBy: " -> ")
        let known = start != nil && endpoints?.count == 2
        for (index, session) in scenario.sessions.enumerated() {
            var name = session.name ?? scenario.name
            if session.name == nil, scenario.sessions.count > 1 { name += " (session \(index + 1) of \(scenario.sessions.count))" }
            let info = SessionInfo(
                id: firstSessionID + index,
                client: known ? endpoints![0] : "client",
                server: known ? endpoints![1] : "server",
                start: base, source: source, handshakeSeen: true,
                name: known ? nil : "scenario '" + name + "'")
            observer.sessionStarted(info)
            observer.select(session: info.id)
            var dialogue = SMTPDialogue(expectGreeting: true, tlsIsDecrypted: true)
            var time = base
            if session.implicitTLS {
                observer.tlsStarted(TLSStart(mode: .implicit, state: .decrypted(version: nil, cipherSuite: nil)), time: base)
            }
            for write in writes(session) {
                // Delays add up; a scenario spanning more than ~30 years of delays is clamped.
                time = Timestamp(nanoseconds: base.nanoseconds &+ Int64(min(write.time, 1e9) * 1_000_000_000))
                write.bytes.withUnsafeBytes { dialogue.receive($0, from: write.side, time: time, observer: observer) }
            }
            dialogue.finish(time: time, observer: observer)
            observer.sessionEnded(info, summary: dialogue.summary, reason: endReason(session), time: time)
        }
        return scenario.sessions.count
    }
}
