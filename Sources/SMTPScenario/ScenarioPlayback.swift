import SMTPCore

/// Plays a scenario's sessions as the bytes a client and server would exchange, through the same
/// ``SMTPDialogue`` that reads captures, so that scenarios are rendered (and later replayed and
/// compared) with the one grammar.
public enum ScenarioPlayback {
    /// One write on the wire.
    public struct Write: Sendable {
        public var side: Side
        public var bytes: [UInt8]
        /// Seconds since the session began.
        public var time: Double
    }

    /// The bytes of one session, in order: greeting, then each step's client part and reply.
    public static func writes(_ session: Scenario.Session) -> [Write] {
        var writes: [Write] = []
        var clock = session.greetingDelay ?? 0
        writes.append(Write(side: .server, bytes: session.greeting.bytes, time: clock))
        for step in session.steps {
            switch step.kind {
            case .unsolicited:
                break
            case .command, .auth:
                writes.append(Write(side: .client, bytes: step.client, time: clock))
            case .message where step.via == .data:
                var wire = DotStuffing.stuff(step.client, keepingBareLF: true)
                if step.fault == .drop {
                    // The server closes once the content is in, before the `.` line.
                    wire.removeLast(3)
                    if step.client.last != 0x0A, !step.client.isEmpty { wire.removeLast(2) }
                }
                writes.append(Write(side: .client, bytes: wire, time: clock))
            case .message:
                // BDAT: the recorded chunk sizes if they still fit the content, else one chunk.
                let fits = !step.chunks.isEmpty && step.chunks.allSatisfy { $0 >= 0 && $0 <= step.client.count }
                    && step.chunks.reduce(0) { $0 &+ $1 } == step.client.count
                let sizes = fits ? step.chunks : [step.client.count]
                var offset = 0
                for (index, size) in sizes.enumerated() {
                    let last = index == sizes.count - 1
                    writes.append(Write(side: .client, bytes: Array("BDAT \(size)\(last ? " LAST" : "")\r\n".utf8) + step.client[offset..<(offset + size)], time: clock))
                    offset += size
                    if !last {
                        let reply = index < step.chunkReplies.count ? step.chunkReplies[index] : "250 2.0.0 OK"
                        writes.append(Write(side: .server, bytes: reply.bytes, time: clock))
                    }
                }
            }
            clock += step.delay ?? 0
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
            let reason: SessionEndReason = switch session.end {
            case .quit: .closed(by: .server)
            case .clientClose: .closed(by: .client)
            case .serverClose: .closed(by: .server)
            }
            observer.sessionEnded(info, summary: dialogue.summary, reason: session.steps.last?.fault != nil ? .closed(by: .server) : reason, time: time)
        }
        return scenario.sessions.count
    }
}
