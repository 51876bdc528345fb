import SMTPCore

/// What one connection plays: a session fixed when it was accepted, or (`--assign command`) the
/// session whose first step matches the client's first command, chosen when that command comes.
///
/// It has the same driving surface as ``SessionPlayer``, so the server handles both alike.
public struct ScriptedConnection: Sendable {
    /// A session that may be played.
    public struct Candidate: Sendable {
        /// The session, its patterns compiled once for every connection that plays it.
        public var compiled: CompiledSession
        public var scenarioName: String
        /// 1-based number of the session in its scenario.
        public var scenarioSession: Int

        public var session: Scenario.Session { compiled.session }

        public init(compiled: CompiledSession, scenarioName: String, scenarioSession: Int) {
            self.compiled = compiled
            self.scenarioName = scenarioName
            self.scenarioSession = scenarioSession
        }

        func player(_ options: SessionPlayer.Options) -> SessionPlayer {
            SessionPlayer(session: compiled, scenarioName: scenarioName, scenarioSession: scenarioSession, options: options)
        }
    }

    enum State: Sendable {
        case playing(SessionPlayer)
        /// The greeting (the first candidate's) went out; the first line decides.
        case choosing([Candidate], firstLine: [UInt8])
        /// Only while ``update(_:)`` changes the player in place: the state then holds no second
        /// reference to the player's arrays, which would make each change copy them.
        case modifying
    }

    var state: State
    let options: SessionPlayer.Options

    /// Plays `candidate` from the start.
    public init(playing candidate: Candidate, options: SessionPlayer.Options) {
        self.options = options
        state = .playing(candidate.player(options))
    }

    /// Chooses among `candidates` (at least one) by the client's first command.
    public init(choosingAmong candidates: [Candidate], options: SessionPlayer.Options) {
        precondition(!candidates.isEmpty, "no session to choose from")
        self.options = options
        state = candidates.count == 1 ? .playing(candidates[0].player(options)) : .choosing(candidates, firstLine: [])
    }

    public var isFinished: Bool {
        if case .playing(let player) = state { return player.isFinished }
        return false
    }

    public mutating func start() -> [SessionPlayer.Action] {
        switch state {
        case .playing:
            return update { $0.start() }
        case .choosing(let candidates, _):
            // The first candidate's greeting (with its delay) only: what the chosen session plays
            // before the client speaks comes once it is chosen.
            var player = candidates[0].player(options)
            let opening = player.start()
            guard let greeting = opening.firstIndex(where: { if case .send = $0 { true } else { false } }) else { return opening }
            return Array(opening[...greeting])
        case .modifying:
            preconditionFailure("ScriptedConnection used while its player is being changed")
        }
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer) -> [SessionPlayer.Action] {
        switch state {
        case .playing:
            return update { $0.receive(bytes) }
        case .choosing(let candidates, var line):
            line.append(contentsOf: bytes)
            guard line.contains(0x0A) || line.count > options.limits.commandLine else {
                state = .choosing(candidates, firstLine: line)
                return []
            }
            let end = line.firstIndex(of: 0x0A).map { $0 + 1 } ?? line.count
            let first = Array(line[..<end])
            let chosen = candidates.first { candidate in
                guard let step = candidate.session.steps.first, case .command = step.kind else { return false }
                return candidate.compiled.accepts(line: first, step: 0)
            } ?? candidates[0]
            var player = chosen.player(options)
            var actions = player.start(greetingSent: true)
            actions += player.receive(line)
            state = .playing(player)
            return actions
        case .modifying:
            preconditionFailure("ScriptedConnection used while its player is being changed")
        }
    }

    public mutating func receive(_ bytes: [UInt8]) -> [SessionPlayer.Action] {
        bytes.withUnsafeBytes { receive($0) }
    }

    public mutating func tlsStarted() { update { $0.tlsStarted() } }
    public mutating func clientClosed() { update { $0.clientClosed() } }
    public mutating func failed(_ reason: String) { update { $0.failed(reason) } }

    public mutating func idleTimedOut(after seconds: Double) -> [SessionPlayer.Action] {
        update { $0.idleTimedOut(after: seconds) }
    }

    public mutating func interrupt() -> [SessionPlayer.Action] {
        update { $0.interrupt() }
    }

    public func verdict(session number: Int, time: String, client: String) -> Verdict {
        switch state {
        case .playing(let player):
            return player.verdict(session: number, time: time, client: client)
        case .choosing(let candidates, _):
            // The client never said which: the first session, of which nothing was played.
            var player = candidates[0].player(options)
            player.clientClosed()
            return player.verdict(session: number, time: time, client: client)
        case .modifying:
            preconditionFailure("ScriptedConnection used while its player is being changed")
        }
    }

    /// Runs `body` on the player in place, choosing the first candidate if none was chosen yet.
    mutating func update<T>(_ body: (inout SessionPlayer) -> T) -> T {
        var player: SessionPlayer
        switch state {
        case .playing(let current):
            player = current
        case .choosing(let candidates, _):
            player = candidates[0].player(options)
            _ = player.start(greetingSent: true)
        case .modifying:
            preconditionFailure("ScriptedConnection used while its player is being changed")
        }
        state = .modifying
        let result = body(&player)
        state = .playing(player)
        return result
    }
}
