import NIOCore
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPScenario
import SMTPTranscript

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One client connection relayed to the upstream server, and its recording. It lives on the
/// client channel's event loop, where the upstream channel lives too, so both legs are handled
/// without locks.
final class ProxySession {
    let number: Int
    let proxy: RecordProxy
    let client: any Channel
    var upstream: (any Channel)?
    let promise: EventLoopPromise<RecordedSession>
    var dialogue: SMTPDialogue
    let recorder: ScenarioRecorder
    let transcript: ByteOutput?
    let observers: SessionObserverGroup
    /// The observers, with the replies the proxy makes itself flagged as such.
    let marked: ProxyReplyMarker<SessionObserverGroup>
    var info: SessionInfo
    var scenario: Scenario?
    /// What the client sent after STARTTLS, held until the server's reply: dropped if TLS begins
    /// (RFC 3207 4.2: never forwarded), relayed if the server refused.
    var held: [UInt8]?
    var droppedAfterSTARTTLS = 0
    var reason: SessionEndReason?
    var problem: String?
    var closed: Set<Side> = []
    var finished = false
    var lastTime = Timestamp(nanoseconds: 0)

    init(number: Int, proxy: RecordProxy, client: any Channel, promise: EventLoopPromise<RecordedSession>) {
        self.number = number
        self.proxy = proxy
        self.client = client
        self.promise = promise
        let configuration = proxy.configuration
        dialogue = SMTPDialogue(expectGreeting: true, tlsIsDecrypted: !configuration.passthrough)
        // The bytes after a STARTTLS line stay with the proxy until the server's reply.
        dialogue.stopsAtTLSRequest = !configuration.passthrough
        let start = Timestamp.now()
        let clientAddress = client.remoteAddress.map(RecordProxy.describe) ?? "unknown"
        info = SessionInfo(id: number, client: clientAddress, server: configuration.upstream, start: start,
                           source: "smtptape record", handshakeSeen: true)
        let upstream = configuration.upstream
        recorder = ScenarioRecorder(showSecrets: proxy.showSecrets) { info in
            Scenario.Origin(connection: "\(info.client) -> \(info.server)", session: info.id, proxy: upstream, start: info.start.rfc3339)
        }
        var observers: [any SessionObserver] = [recorder]
        if proxy.transcripts {
            let output = ByteOutput.collecting()
            transcript = output
            observers.append(TextTranscriptRenderer(output: output, data: .full, showSecrets: proxy.showSecrets))
        } else {
            transcript = nil
        }
        self.observers = SessionObserverGroup(observers)
        marked = ProxyReplyMarker(self.observers)
        recorder.onScenario = { [unowned self] _, scenario in self.scenario = scenario }
    }

    /// Times never go backwards within a session.
    func now() -> Timestamp {
        let time = Timestamp.now()
        if time > lastTime { lastTime = time }
        return lastTime
    }

    // MARK: Legs

    func clientActive() {
        observers.sessionStarted(info)
        observers.select(session: info.id)
        if proxy.configuration.listenTLS {
            // The client speaks TLS from the first byte; the proxy reads it in the clear.
            observers.tlsStarted(TLSStart(mode: .implicit, state: .decrypted(version: nil, cipherSuite: nil)), time: info.start)
        }
        let configuration = proxy.configuration
        let upstreamTLS = configuration.upstreamTLS ? proxy.upstreamTLSContext : nil
        let host = configuration.upstreamHost
        let session = NIOLoopBound(self, eventLoop: client.eventLoop)
        ClientBootstrap(group: client.eventLoop)
            .connectTimeout(.nanoseconds(Int64(configuration.connectTimeout * 1e9)))
            .channelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let upstreamTLS {
                        try channel.pipeline.syncOperations.addHandler(try Self.clientTLSHandler(upstreamTLS, host: host))
                    }
                    try channel.pipeline.syncOperations.addHandler(ProxyLegHandler(session: session.value, side: .server))
                }
            }
            .connect(host: host, port: configuration.upstreamPort)
            .whenComplete { result in
                let session = session.value
                switch result {
                case .success(let channel):
                    session.upstream = channel
                    if session.closed.contains(.client) {
                        channel.close(promise: nil)
                        return
                    }
                    session.client.setOption(ChannelOptions.autoRead, value: true).whenComplete { _ in }
                    session.client.read()
                case .failure(let error):
                    session.upstreamUnreachable(error)
                }
            }
    }

    /// TLS towards the server, with SNI when it is named by host name (an IP address there throws).
    static func clientTLSHandler(_ context: NIOSSLContext, host: String) throws -> NIOSSLClientHandler {
        let isAddress = (try? SocketAddress(ipAddress: host, port: 0)) != nil
        return try NIOSSLClientHandler(context: context, serverHostname: isAddress ? nil : host)
    }

    /// The upstream could not be reached: the client gets the proxy's own `421` greeting.
    func upstreamUnreachable(_ error: any Error) {
        problem = "the server \(proxy.configuration.upstream) could not be reached: \(error)"
        proxyReply("421 4.4.1 smtptape: the server \(proxy.configuration.upstream) cannot be reached\r\n")
        reason = .closed(by: .server)
        client.close(promise: nil)
        closed.insert(.server)
    }

    /// A reply the proxy makes itself: sent to the client and recorded in the server's place,
    /// marked as the proxy's (`reply-by: proxy`, `greeting-by: proxy`).
    func proxyReply(_ text: String) {
        let bytes = Array(text.utf8)
        marked.byProxy = true
        _ = bytes.withUnsafeBytes { dialogue.receive($0, from: .server, time: now(), observer: marked) }
        marked.byProxy = false
        client.writeAndFlush(ByteBuffer(bytes: bytes), promise: nil)
    }

    func fromClient(_ buffer: ByteBuffer) {
        guard let upstream else { return }
        if held != nil || (dialogue.awaitsTLSReply && !proxy.configuration.passthrough) {
            // Sent after STARTTLS before the server answered it.
            held = (held ?? []) + Array(buffer.readableBytesView)
            return
        }
        let time = now()
        // The dialogue reads up to a STARTTLS line and no further (stopsAtTLSRequest).
        let forward = buffer.withUnsafeReadableBytes { dialogue.receive($0, from: .client, time: time, observer: observers) }
        if forward < buffer.readableBytes {
            held = Array(buffer.readableBytesView.dropFirst(forward))
        }
        if forward > 0, let slice = buffer.getSlice(at: buffer.readerIndex, length: forward) {
            upstream.writeAndFlush(slice, promise: nil)
        }
    }

    func fromServer(_ buffer: ByteBuffer) {
        let tlsBefore = dialogue.summary.tls
        _ = buffer.withUnsafeReadableBytes { dialogue.receive($0, from: .server, time: now(), observer: observers) }
        client.write(buffer, promise: nil)
        client.flush()
        if !proxy.configuration.passthrough, tlsBefore == nil, dialogue.summary.tls == .startTLS {
            startTLS()
        } else if let pending = held, !dialogue.awaitsTLSReply {
            // The server refused STARTTLS: what the client sent after it goes on.
            held = nil
            fromClient(ByteBuffer(bytes: pending))
        }
    }

    /// The server accepted STARTTLS (its `220` is on its way to the client): TLS in front of both
    /// legs in this same event-loop tick, so nothing after the `220` is read or written in the clear.
    func startTLS() {
        droppedAfterSTARTTLS += held?.count ?? 0
        held = nil
        guard let clientTLS = proxy.clientTLS, let upstreamTLS = proxy.upstreamTLSContext, let upstream else { return }
        do {
            try client.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: clientTLS), position: .first)
            try upstream.pipeline.syncOperations.addHandler(try Self.clientTLSHandler(upstreamTLS, host: proxy.configuration.upstreamHost), position: .first)
        } catch {
            problem = "TLS could not begin: \(error)"
            client.close(promise: nil)
            upstream.close(promise: nil)
        }
    }

    func legClosed(_ side: Side) {
        guard !closed.contains(side) else { return }
        closed.insert(side)
        if reason == nil { reason = .closed(by: side) }
        switch side {
        case .server:
            if !closed.contains(.client) {
                // The server went away without its last word: the client hears it from the proxy.
                if let code = dialogue.summary.lastReplyCode, code == 221 || code == 421 {} else if upstream != nil {
                    if problem == nil {
                        let how = reason == .reset(by: .server) ? "reset the connection" : "closed the connection"
                        problem = "the server \(how) before its last word; the client got the proxy's 421"
                    }
                    proxyReply("421 4.4.2 smtptape: the connection to the server was lost\r\n")
                }
                client.close(promise: nil)
            }
        case .client:
            if let upstream, !closed.contains(.server) { upstream.close(promise: nil) }
            if upstream == nil { closed.insert(.server) }
        }
        if closed.count == 2 { finish() }
    }

    /// The proxy is stopping: the session ends here, as far as it went.
    func interrupt() {
        if reason == nil { reason = .captureEnded }
        if problem == nil { problem = "the recording stopped (SIGINT or SIGTERM) with the connection open" }
        client.close(promise: nil)
        upstream?.close(promise: nil)
    }

    func legFailed(_ side: Side, _ error: any Error) {
        if let io = error as? IOError, io.errnoCode == ECONNRESET, reason == nil {
            reason = .reset(by: side)
        } else if problem == nil, !sessionOver, !(error is NIOSSLError && closed.contains(side == .client ? .server : .client)) {
            problem = "\(side == .client ? "the client" : "the server") connection failed: \(error)"
        }
    }

    /// QUIT was answered by 221: how the connections go down after that (a reset, TLS closed
    /// without close_notify, as smtplib and curl do) loses nothing of the session.
    var sessionOver: Bool { dialogue.summary.lastReplyCode == 221 }

    /// Both legs closed: the dialogue ends, the recorder makes the scenario.
    func finish() {
        guard !finished else { return }
        finished = true
        let time = now()
        dialogue.finish(time: time, observer: observers)
        let reason = self.reason ?? .captureEnded
        observers.sessionEnded(info, summary: dialogue.summary, reason: reason, time: time)
        transcript?.flush()
        var ending = String(describing: reason.phrase)
        if let problem { ending += "; " + problem }
        if droppedAfterSTARTTLS > 0 {
            ending += "; \(droppedAfterSTARTTLS) bytes the client sent after STARTTLS before TLS were dropped, never forwarded"
        }
        guard var scenario else {
            promise.fail(ChannelError.ioOnClosedChannel)
            return
        }
        // What went wrong is said in the scenario too, beside what the recorder found.
        var said: [String] = []
        if let problem { said.append(problem) }
        if case .reset(let side) = reason, !sessionOver { said.append("the connection was reset by the \(side == .client ? "client" : "server")") }
        if droppedAfterSTARTTLS > 0 { said.append("\(droppedAfterSTARTTLS) bytes the client sent after STARTTLS, before TLS, were dropped and never forwarded") }
        if !said.isEmpty, !scenario.sessions.isEmpty {
            let before = scenario.sessions[0].incomplete
            scenario.sessions[0].incomplete = ([before].compactMap { $0 } + said).joined(separator: "; ")
        }
        promise.succeed(RecordedSession(number: number, info: info, scenario: scenario, transcript: transcript?.collected, ending: ending))
    }
}

/// One leg's handler: reads go to the session, which relays them to the other leg; a leg that
/// cannot take more writes stops the other from reading (back-pressure).
final class ProxyLegHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let session: ProxySession
    let side: Side

    init(session: ProxySession, side: Side) {
        self.session = session
        self.side = side
    }

    func channelActive(context: ChannelHandlerContext) {
        if side == .client { session.clientActive() }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        switch side {
        case .client: session.fromClient(buffer)
        case .server: session.fromServer(buffer)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.legClosed(side)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        session.legFailed(side, error)
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is RecordProxy.Interrupt {
            session.interrupt()
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let other = side == .client ? session.upstream : session.client
        other?.setOption(ChannelOptions.autoRead, value: context.channel.isWritable).whenComplete { _ in }
        if context.channel.isWritable { other?.read() }
        context.fireChannelWritabilityChanged()
    }
}
