import NIOCore
import NIOEmbedded
import SMTPNIO
import SMTPScenario
import Testing

/// The session handler on an `EmbeddedChannel`: no sockets, the clock in the test's hands.
@Suite("ReplaySessionHandler")
struct SessionHandlerTests {
    /// Stands in for NIOSSL's handler: records that it was put in front.
    final class FakeTLS: ChannelDuplexHandler, Sendable {
        typealias InboundIn = ByteBuffer
        typealias OutboundIn = ByteBuffer
    }

    static let scenario = """
        version: 1
        name: t
        sessions:
        - greeting: 220 mx
          steps:
          - client: STARTTLS
            reply: 220 go ahead
            tls: start
          - client: NOOP
            reply: 250 slow
            delay: 2
          - client: QUIT
            reply: 221 bye
        """

    static func channel(tls: Bool = true) throws -> (EmbeddedChannel, EventLoopFuture<Verdict>) {
        let scenario = try Tools.scenario(scenario)
        let channel = EmbeddedChannel()
        let promise = channel.eventLoop.makePromise(of: Verdict.self)
        let connection = ScriptedConnection(
            playing: .init(compiled: try CompiledSession(scenario.sessions[0]), scenarioName: "t", scenarioSession: 1), options: .init())
        let handler = ReplaySessionHandler(connection: connection, sessionNumber: 1, idleTimeout: .seconds(30),
                                           makeTLSHandler: tls ? { @Sendable in FakeTLS() } : nil, verdict: promise)
        try channel.pipeline.syncOperations.addHandler(handler)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 25)).wait()
        return (channel, promise.futureResult)
    }

    static func written(_ channel: EmbeddedChannel) throws -> [String] {
        var out: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            out.append(String(buffer: buffer))
        }
        return out
    }

    static func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(ByteBuffer(string: text))
    }

    @Test("STARTTLS: the 220 goes out, then TLS is first in the pipeline; the RSET sent with STARTTLS is never answered")
    func startTLS() throws {
        let (channel, verdict) = try Self.channel()
        #expect(try Self.written(channel) == ["220 mx\r\n"])
        try Self.send(channel, "STARTTLS\r\nRSET\r\n")
        #expect(try Self.written(channel) == ["220 go ahead\r\n"])
        let first = try channel.pipeline.syncOperations.context(handlerType: FakeTLS.self)
        #expect(first.name != "", "the TLS handler is in the pipeline")
        // What comes now is what TLS decrypted.
        try Self.send(channel, "QUIT\r\n")
        #expect(!channel.isActive, "QUIT (out of turn) is answered by the script's QUIT and the server closes")
        let result = try verdict.wait()
        #expect(result.notes.contains("the client sent 6 bytes after STARTTLS before TLS began: they were dropped, not executed (RFC 3207 4.2)"))
        #expect(result.steps.map(\.status) == [.passed, .missing, .passed], "QUIT out of turn: NOOP skipped")
    }

    @Test("a scripted delay is a scheduled pause: nothing before it has passed, the reply after")
    func pause() throws {
        let (channel, _) = try Self.channel()
        _ = try Self.written(channel)
        try Self.send(channel, "STARTTLS\r\n")
        _ = try Self.written(channel)
        try Self.send(channel, "NOOP\r\nQUIT\r\n")
        #expect(try Self.written(channel) == [])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1999))
        #expect(try Self.written(channel) == [])
        channel.embeddedEventLoop.advanceTime(by: .milliseconds(1))
        // The pipelined QUIT waits its turn behind the pause, then the server closes.
        #expect(try Self.written(channel) == ["250 slow\r\n", "221 bye\r\n"])
        #expect(!channel.isActive)
    }

    @Test("idle: 421 and close; shutdown: 421 4.3.2, close, and the steps not played are interrupted")
    func idleAndShutdown() throws {
        let (idle, _) = try Self.channel()
        _ = try Self.written(idle)
        idle.pipeline.fireUserInboundEventTriggered(IdleStateHandler.IdleStateEvent.read)
        #expect(try Self.written(idle).first?.hasPrefix("421 4.4.2") == true)
        #expect(!idle.isActive)

        let (quiet, verdict) = try Self.channel()
        _ = try Self.written(quiet)
        quiet.pipeline.fireUserInboundEventTriggered(ChannelShouldQuiesceEvent())
        #expect(try Self.written(quiet) == ["421 4.3.2 smtptape: server shutting down\r\n"])
        let result = try verdict.wait()
        #expect(result.steps.map(\.status) == [.interrupted, .interrupted, .interrupted])
    }

    @Test("a script that starts TLS on a server without TLS: the session fails and the connection closes")
    func noTLS() throws {
        let (channel, verdict) = try Self.channel(tls: false)
        _ = try Self.written(channel)
        try Self.send(channel, "STARTTLS\r\n")
        #expect(try Self.written(channel) == ["220 go ahead\r\n"])
        #expect(!channel.isActive)
        #expect(try verdict.wait().notes.contains("STARTTLS was accepted by the script, but the server has no TLS"))
    }
}
