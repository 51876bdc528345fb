import NIOCore
import SMTPCore
import SMTPScenario

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One replayed SMTP session on a channel: the client's bytes go to a ``ScriptedConnection``,
/// and its actions are carried out in order on the event loop.
///
/// Everything that must happen at an exact byte position happens here, synchronously: STARTTLS
/// writes the `220` and puts the TLS handler first in the pipeline in the same event-loop tick,
/// so nothing after the `220` leaves in the clear and every byte read afterwards is decrypted
/// (the player drops plaintext that came before: RFC 3207 4.2); a reset sets `SO_LINGER` 0 and
/// closes beneath TLS. Pauses are scheduled tasks; the idle timeout comes from an
/// `IdleStateHandler` placed before this handler; a `ChannelShouldQuiesceEvent` (server
/// shutdown) interrupts the session. The verdict completes `verdict` when the channel closes.
public final class ReplaySessionHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    /// Makes the TLS handler for STARTTLS (NIOSSL's server handler); `nil` when the server has no TLS.
    public typealias TLSHandlerFactory = @Sendable () throws -> any ChannelHandler

    var connection: ScriptedConnection
    let makeTLSHandler: TLSHandlerFactory?
    let idleTimeout: TimeAmount
    let sessionNumber: Int
    let verdictPromise: EventLoopPromise<Verdict>
    var startTime = ""
    var client = "unknown"
    /// Actions waiting their turn behind a pause.
    var queue: [SessionPlayer.Action] = []
    var head = 0
    var pause: Scheduled<Void>?
    var tlsHandler: (any ChannelHandler)?
    var closing = false
    var finished = false

    /// - Parameters:
    ///   - connection: what this connection plays.
    ///   - sessionNumber: its number in the run, for the verdict.
    ///   - idleTimeout: reported in the verdict when the client goes quiet (the timer itself is
    ///     the `IdleStateHandler`'s).
    ///   - verdict: completed with the verdict once the channel closed.
    public init(connection: ScriptedConnection, sessionNumber: Int, idleTimeout: TimeAmount,
                makeTLSHandler: TLSHandlerFactory?, verdict: EventLoopPromise<Verdict>) {
        self.connection = connection
        self.sessionNumber = sessionNumber
        self.idleTimeout = idleTimeout
        self.makeTLSHandler = makeTLSHandler
        self.verdictPromise = verdict
    }

    public func channelActive(context: ChannelHandlerContext) {
        startTime = Timestamp.now().rfc3339
        if let address = context.channel.remoteAddress { client = Self.describe(address) }
        perform(connection.start(), context: context)
        context.fireChannelActive()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        let actions = buffer.withUnsafeReadableBytes { connection.receive($0) }
        perform(actions, context: context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        finish()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        // A backstop: the verdict is given once, whichever comes first.
        finish()
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent {
            perform(connection.interrupt(), context: context)
            return
        }
        if let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read {
            // A scripted pause is the server's silence, not the client's.
            guard pause == nil else { return }
            let seconds = Double(idleTimeout.nanoseconds) / 1e9
            perform(connection.idleTimedOut(after: seconds), context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // After the session's end (a client that closes TLS without close_notify, say), an error
        // says nothing about how the client kept to the script.
        if !connection.isFinished {
            connection.failed("the connection failed: \(error)")
        }
        context.close(promise: nil)
    }

    func finish() {
        guard !finished else { return }
        finished = true
        pause?.cancel()
        pause = nil
        connection.clientClosed()
        verdictPromise.succeed(connection.verdict(session: sessionNumber, time: startTime, client: client))
    }

    // MARK: Actions

    func perform(_ actions: [SessionPlayer.Action], context: ChannelHandlerContext) {
        guard !actions.isEmpty, !closing else { return }
        queue.append(contentsOf: actions)
        if pause == nil { run(context: context) }
    }

    /// Carries out queued actions until a pause (which schedules the rest) or the end.
    func run(context: ChannelHandlerContext) {
        var wrote = false
        defer {
            if wrote { context.flush() }
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            }
        }
        while head < queue.count, !closing {
            let action = queue[head]
            head += 1
            switch action {
            case .pause(let seconds):
                if wrote { context.flush(); wrote = false }
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                pause = context.eventLoop.scheduleTask(in: .nanoseconds(Int64(seconds * 1e9))) {
                    let (handler, context) = loopBound.value
                    handler.pause = nil
                    handler.run(context: context)
                }
                return
            case .send(let bytes):
                var buffer = context.channel.allocator.buffer(capacity: bytes.count)
                buffer.writeBytes(bytes)
                context.write(wrapOutboundOut(buffer), promise: nil)
                wrote = true
            case .startTLS:
                // The 220 is written and flushed below every handler before TLS goes in front.
                context.flush()
                wrote = false
                startTLS(context: context)
            case .close:
                closing = true
                context.flush()
                wrote = false
                context.close(promise: nil)
            case .reset:
                closing = true
                reset(context: context)
            }
        }
    }

    func startTLS(context: ChannelHandlerContext) {
        guard let makeTLSHandler else {
            connection.failed("STARTTLS was accepted by the script, but the server has no TLS")
            closing = true
            context.close(promise: nil)
            return
        }
        do {
            let handler = try makeTLSHandler()
            try context.pipeline.syncOperations.addHandler(handler, position: .first)
            tlsHandler = handler
            connection.tlsStarted()
        } catch {
            connection.failed("TLS could not begin: \(error)")
            closing = true
            context.close(promise: nil)
        }
    }

    /// Closes with a TCP RST: `SO_LINGER` 0, and the close starts beneath any TLS handler (which
    /// would otherwise send close_notify and wait).
    func reset(context: ChannelHandlerContext) {
        if let provider = context.channel as? any SocketOptionProvider {
            _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
        }
        if let tlsHandler, let tlsContext = try? context.pipeline.syncOperations.context(handler: tlsHandler) {
            tlsContext.close(promise: nil)
        } else {
            context.close(promise: nil)
        }
    }

    /// `HOST:PORT`, or `[HOST]:PORT` for IPv6.
    public static func describe(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "unknown"
        let port = address.port.map(String.init) ?? "0"
        if case .v6 = address { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }
}
