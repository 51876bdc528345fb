import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPNIO
import SMTPScenario

/// How a replay server listens and plays.
public struct ReplayConfiguration: Sendable {
    /// Where to listen (loopback unless told otherwise); port 0 picks a free port.
    public var host: String
    public var port: Int
    /// SMTPS: TLS from the first byte on the listener (`--listen-tls`).
    public var implicitTLS: Bool
    /// The certificate to serve; `nil` makes one at start when TLS is needed.
    public var certificate: ReplayCertificate?
    /// Where to write the TLS secrets (NSS key log format), if anywhere.
    public var keyLogPath: String?
    /// Seconds of client silence before `421` and close (RFC 5321 4.5.3.2 suggests 5 minutes).
    public var idleTimeout: Double
    /// Stop accepting after this many connections, and end when they have.
    public var sessionLimit: Int?
    /// `--assign command`: each connection plays the session whose first step matches the
    /// client's first command; otherwise the sessions in order, wrapping around.
    public var assignByCommand: Bool
    public var options: SessionPlayer.Options

    public init(host: String = "127.0.0.1", port: Int = 0, implicitTLS: Bool = false, certificate: ReplayCertificate? = nil,
                keyLogPath: String? = nil, idleTimeout: Double = 300, sessionLimit: Int? = nil, assignByCommand: Bool = false,
                options: SessionPlayer.Options = .init()) {
        self.host = host
        self.port = port
        self.implicitTLS = implicitTLS
        self.certificate = certificate
        self.keyLogPath = keyLogPath
        self.idleTimeout = idleTimeout
        self.sessionLimit = sessionLimit
        self.assignByCommand = assignByCommand
        self.options = options
    }
}

/// A scripted SMTP server: each connection plays a scenario session (``SessionPlayer``) and
/// ends with a ``Verdict``.
///
/// The accept loop runs on `NIOAsyncChannel`; each session runs in a ``ReplaySessionHandler`` on
/// the listener's event loop (one loop for the listener and its connections), which hands its
/// verdict over as the channel closes, so a session's failure stays with it. ``shutdown()`` stops
/// accepting and interrupts the open sessions (`421`), which then end with their verdicts.
public final class ReplayServer: Sendable {
    public let configuration: ReplayConfiguration
    let candidates: [ScriptedConnection.Candidate]
    let tlsContext: NIOSSLContext?
    let keyLog: KeyLogFile?
    /// The CA to trust, when the certificate was made here.
    public let caPEM: String?
    let group: any EventLoopGroup
    let quiesce: ServerQuiescingHelper
    let state = NIOLockedValueBox(State())

    struct State {
        var accepted = 0
        var channel: (any Channel)?
        var shuttingDown = false
    }

    /// Prepares a server for `scenarios`; fails when they cannot be served together (implicit-TLS
    /// and plain sessions without `implicitTLS`) or the certificate cannot be made.
    public init(scenarios: [Scenario], configuration: ReplayConfiguration, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        var configuration = configuration
        var candidates: [ScriptedConnection.Candidate] = []
        for scenario in scenarios {
            for (index, session) in scenario.sessions.enumerated() {
                do {
                    candidates.append(ScriptedConnection.Candidate(compiled: try CompiledSession(session), scenarioName: scenario.name, scenarioSession: index + 1))
                } catch {
                    throw ReplayError.scenarios("\(scenario.name), session \(index + 1): \(error)")
                }
            }
        }
        guard !candidates.isEmpty else { throw ReplayError.scenarios("no session to play") }
        configuration.options.limits = configuration.options.limits.fitting(candidates.map(\.session))
        let implicit = candidates.filter(\.session.implicitTLS).count
        if implicit == candidates.count {
            configuration.implicitTLS = true
        } else if implicit > 0, !configuration.implicitTLS {
            throw ReplayError.scenarios("\(implicit) of \(candidates.count) sessions are implicit TLS (tls: implicit) and the others are not: serve them on a TLS listener with --listen-tls, or separately")
        }
        let needsTLS = configuration.implicitTLS || candidates.contains { candidate in
            candidate.session.steps.contains { $0.startsTLS || $0.verb == .starttls }
        }
        var caPEM: String?
        if needsTLS {
            let certificate = try configuration.certificate ?? ReplayCertificate.generate(hosts: [configuration.host])
            caPEM = certificate.caPEM
            keyLog = try configuration.keyLogPath.map(KeyLogFile.init(path:))
            tlsContext = try certificate.serverContext(keyLog: keyLog)
        } else {
            keyLog = nil
            tlsContext = nil
        }
        self.caPEM = caPEM
        self.configuration = configuration
        self.candidates = candidates
        self.group = group
        self.quiesce = ServerQuiescingHelper(group: group)
    }

    /// Every scenario session this server can play, in order.
    public var sessions: [ScriptedConnection.Candidate] { candidates }

    /// What connection number `number` (0-based) plays.
    func connection(_ number: Int) -> ScriptedConnection {
        if configuration.assignByCommand {
            return ScriptedConnection(choosingAmong: candidates, options: configuration.options)
        }
        return ScriptedConnection(playing: candidates[number % candidates.count], options: configuration.options)
    }

    /// Listens, then serves until ``shutdown()`` or the session limit; returns the verdicts.
    /// - Parameters:
    ///   - onRunning: called with the bound address (`HOST:PORT`, `[::1]:PORT`) before the first
    ///     connection is accepted.
    ///   - onVerdict: called as each session ends, one verdict at a time, off the event loops (it
    ///     may write files).
    public func run(onRunning: @Sendable (String) async -> Void = { _ in },
                    onVerdict: @escaping @Sendable (Verdict) -> Void = { _ in }) async throws -> [Verdict] {
        // Each session's verdict is handed over on its event loop, as the channel closes, into one
        // stream that a single task reads: no task, no thread hop and no callback registered from
        // off the loop per connection, and a burst of verdicts is read in one wake-up.
        let (verdictStream, verdictContinuation) = AsyncStream.makeStream(of: Verdict.self)
        let tally = NIOLockedValueBox(SessionTally())
        let server = try await bind(verdicts: verdictContinuation, tally: tally)
        guard let address = server.channel.localAddress else { throw ReplayError.listen("no local address after binding") }
        let shutDownEarly = state.withLockedValue { state -> Bool in
            state.channel = server.channel
            return state.shuttingDown
        }
        if shutDownEarly { server.channel.close(promise: nil) }
        await onRunning(ReplaySessionHandler.describe(address))

        let limit = configuration.sessionLimit
        return await withTaskGroup(of: [Verdict].self) { group in
            group.addTask {
                var verdicts: [Verdict] = []
                for await verdict in verdictStream {
                    verdicts.append(verdict)
                    onVerdict(verdict)
                    let done = tally.withLockedValue { tally -> Bool in
                        tally.ended += 1
                        return tally.allEnded
                    }
                    if done { break }
                }
                return verdicts
            }
            var accepted = 0
            do {
                try await server.executeThenClose { inbound in
                    for try await connection in inbound where connection.plays {
                        accepted += 1
                        if let limit, accepted >= limit { server.channel.close(promise: nil) }
                    }
                }
            } catch {
                // The listener closed under the loop (shutdown, session limit): the sessions go on.
            }
            let allEnded = tally.withLockedValue { tally -> Bool in
                tally.listening = false
                return tally.allEnded
            }
            if allEnded { verdictContinuation.finish() }
            let verdicts = await group.next() ?? []
            keyLog?.close()
            return verdicts.sorted { $0.session < $1.session }
        }
    }

    /// Stops accepting and interrupts the open sessions; ``run(onRunning:onVerdict:)`` returns
    /// once they have ended. Safe from any thread.
    public func shutdown() {
        let channel = state.withLockedValue { state -> (any Channel)? in
            state.shuttingDown = true
            return state.channel
        }
        guard channel != nil else { return }
        let promise = group.next().makePromise(of: Void.self)
        quiesce.initiateShutdown(promise: promise)
    }

    /// Stops accepting new connections; the open sessions go on, and
    /// ``run(onRunning:onVerdict:)`` returns once they have ended.
    public func stopAccepting() {
        let channel = state.withLockedValue { state -> (any Channel)? in
            state.shuttingDown = true
            return state.channel
        }
        channel?.close(promise: nil)
    }

    /// The scripted sessions that no verdict played, as `name (session N)`.
    public func unused(after verdicts: [Verdict]) -> [String] {
        let played = Set(verdicts.map { "\($0.scenario)\u{0}\($0.scenarioSession)" })
        return candidates.filter { !played.contains("\($0.scenarioName)\u{0}\($0.scenarioSession)") }
            .map { "\($0.scenarioName) (session \($0.scenarioSession))" }
    }

    /// Sessions begun and ended in a run: the verdict reader stops once the listener has closed
    /// and every session begun has ended.
    struct SessionTally {
        var begun = 0
        var ended = 0
        var listening = true

        var allEnded: Bool { !listening && ended == begun }
    }

    struct Accepted: Sendable {
        /// `false` for a connection over the session limit (closed at once, no verdict).
        var plays: Bool
    }

    /// Binds the listener; each session is counted in `tally` as it begins, and its verdict goes
    /// to `verdicts` when its channel closes.
    func bind(verdicts: AsyncStream<Verdict>.Continuation, tally: NIOLockedValueBox<SessionTally>) async throws -> NIOAsyncChannel<Accepted, Never> {
        let configuration = self.configuration
        let tlsContext = self.tlsContext
        let quiesce = self.quiesce
        let state = self.state
        let idle = TimeAmount.nanoseconds(Int64(configuration.idleTimeout * 1e9))
        let makeTLS: ReplaySessionHandler.TLSHandlerFactory? = tlsContext.map { context in
            { @Sendable in NIOSSLServerHandler(context: context) }
        }
        // The listener and its connections share one event loop. A replay session is short and
        // does little work per read, and handing each accepted connection to another loop (a
        // cross-thread registration and wake-up) cost more than it saved: with smtp-source on two
        // cores, one loop served 35% more messages per second for 20% less CPU. One loop still
        // serves several thousand sessions a second, more than a client under test sends.
        let loop = group.next()
        do {
            return try await ServerBootstrap(group: loop, childGroup: loop)
                .serverChannelOption(ChannelOptions.backlog, value: 1024)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .serverChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(quiesce.makeServerChannelHandler(channel: channel))
                    }
                }
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        let number = state.withLockedValue { state -> Int in
                            state.accepted += 1
                            return state.accepted
                        }
                        if let limit = configuration.sessionLimit, number > limit {
                            // Accepted in the same burst as the last one allowed.
                            try sync.addHandler(CloseOnActive())
                            return Accepted(plays: false)
                        }
                        if configuration.implicitTLS, let tlsContext {
                            try sync.addHandler(NIOSSLServerHandler(context: tlsContext))
                        }
                        try sync.addHandler(IdleStateHandler(readTimeout: idle))
                        let promise = channel.eventLoop.makePromise(of: Verdict.self)
                        let handler = ReplaySessionHandler(connection: self.connection(number - 1), sessionNumber: number,
                                                           idleTimeout: idle, makeTLSHandler: configuration.implicitTLS ? nil : makeTLS,
                                                           verdict: promise)
                        try sync.addHandler(handler)
                        tally.withLockedValue { $0.begun += 1 }
                        // Registered here, on the channel's event loop: completing it runs no hop.
                        promise.futureResult.whenSuccess { verdicts.yield($0) }
                        return Accepted(plays: true)
                    }
                }
        } catch {
            throw ReplayError.listen("\(configuration.host):\(configuration.port): cannot listen (\(error))")
        }
    }
}

/// Closes a connection as soon as it is active.
final class CloseOnActive: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }
}
