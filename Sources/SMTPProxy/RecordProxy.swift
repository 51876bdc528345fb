import NIOConcurrencyHelpers
import NIOCore
import NIOExtras
import NIOPosix
import NIOSSL
import SMTPCore
import SMTPReplay
import SMTPScenario

/// How a recording proxy listens, reaches its upstream server and handles TLS.
public struct RecordConfiguration: Sendable {
    /// Where to listen (loopback unless told otherwise); port 0 picks a free port.
    public var host: String
    public var port: Int
    /// Implicit TLS towards the client (`--listen-tls`).
    public var listenTLS: Bool
    public var upstreamHost: String
    public var upstreamPort: Int
    /// Implicit TLS towards the server (`--upstream-tls`, port 465).
    public var upstreamTLS: Bool
    /// The CA file to verify the server with (`--upstream-ca`); the system's roots otherwise.
    public var upstreamCAFile: String?
    /// Do not verify the server's certificate (`--insecure-upstream`).
    public var insecureUpstream: Bool
    /// The certificate shown to the client; `nil` makes one at start when TLS is needed.
    public var certificate: ReplayCertificate?
    /// Where to write the TLS secrets of both legs (NSS key log format).
    public var keyLogPath: String?
    /// `--tls passthrough`: record up to STARTTLS, then relay the encrypted bytes untouched.
    public var passthrough: Bool
    /// Where to write every session's plaintext dialogue as a pcap (`--pcap`).
    public var pcapPath: String?
    /// Seconds to wait for the upstream connection.
    public var connectTimeout: Double
    /// Stop accepting after this many connections, and end when they have.
    public var sessionLimit: Int?

    public init(host: String = "127.0.0.1", port: Int = 2525, listenTLS: Bool = false, upstreamHost: String, upstreamPort: Int,
                upstreamTLS: Bool = false, upstreamCAFile: String? = nil, insecureUpstream: Bool = false,
                certificate: ReplayCertificate? = nil, keyLogPath: String? = nil, passthrough: Bool = false,
                pcapPath: String? = nil, connectTimeout: Double = 10, sessionLimit: Int? = nil) {
        self.host = host
        self.port = port
        self.listenTLS = listenTLS
        self.upstreamHost = upstreamHost
        self.upstreamPort = upstreamPort
        self.upstreamTLS = upstreamTLS
        self.upstreamCAFile = upstreamCAFile
        self.insecureUpstream = insecureUpstream
        self.certificate = certificate
        self.keyLogPath = keyLogPath
        self.passthrough = passthrough
        self.pcapPath = pcapPath
        self.connectTimeout = connectTimeout
        self.sessionLimit = sessionLimit
    }

    /// `HOST:PORT` of the upstream, as `origin.proxy` names it.
    public var upstream: String {
        upstreamHost.contains(":") ? "[\(upstreamHost)]:\(upstreamPort)" : "\(upstreamHost):\(upstreamPort)"
    }
}

/// One session the proxy relayed, once it ended.
public struct RecordedSession: Sendable {
    /// 1-based, in the order connections were accepted.
    public var number: Int
    public var info: SessionInfo
    /// The scenario, made by the same recorder as `extract` makes from a capture.
    public var scenario: Scenario
    /// The text transcript, when asked for.
    public var transcript: [UInt8]?
    /// Why the session ended, in words (`connection closed by the client`, ...).
    public var ending: String
}

/// A man-in-the-middle SMTP proxy that relays each client connection to an upstream server and
/// records the dialogue, including what follows STARTTLS (it runs TLS to both sides).
///
/// Bytes are relayed as they arrive, never re-encoded. Both directions go, timestamped, to the
/// capture's dialogue reader (``SMTPDialogue``) and ``ScenarioRecorder``, so a recording and an
/// extraction of the same traffic give the same scenario.
public final class RecordProxy: Sendable {
    public let configuration: RecordConfiguration
    /// The CA to trust (PEM), when the certificate shown to clients was made here.
    public let caPEM: String?
    let clientTLS: NIOSSLContext?
    let upstreamTLSContext: NIOSSLContext?
    let keyLog: KeyLogFile?
    let pcap: NIOWritePCAPHandler.SynchronizedFileSink?
    let group: any EventLoopGroup
    let state = NIOLockedValueBox(State())
    let transcripts: Bool
    let showSecrets: Bool

    struct State {
        var accepted = 0
        var listener: (any Channel)?
        var open: [Int: any Channel] = [:]
        var shuttingDown = false
    }

    /// - Parameters:
    ///   - transcripts: render each session's text transcript too.
    ///   - showSecrets: keep AUTH credentials in scenarios and transcripts.
    public init(configuration: RecordConfiguration, transcripts: Bool = false, showSecrets: Bool = false,
                group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) throws {
        self.configuration = configuration
        self.transcripts = transcripts
        self.showSecrets = showSecrets
        self.group = group
        let keyLog = try configuration.keyLogPath.map(KeyLogFile.init(path:))
        self.keyLog = keyLog
        // TLS towards the client: for STARTTLS (unless passed through) or an implicit-TLS listener.
        if configuration.listenTLS || !configuration.passthrough {
            let certificate = try configuration.certificate ?? ReplayCertificate.generate(hosts: [configuration.host])
            caPEM = certificate.caPEM
            clientTLS = try certificate.serverContext(keyLog: keyLog)
        } else {
            caPEM = nil
            clientTLS = nil
        }
        var upstream = TLSConfiguration.makeClientConfiguration()
        upstream.minimumTLSVersion = .tlsv12
        upstream.keyLogCallback = keyLog?.callback
        upstream.shutdownTimeout = .milliseconds(500)
        if configuration.insecureUpstream {
            upstream.certificateVerification = .none
        } else if let ca = configuration.upstreamCAFile {
            do {
                upstream.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(ca))
            } catch {
                throw ReplayError.tls("\(ca): not a PEM certificate (\(error))")
            }
        }
        upstreamTLSContext = try NIOSSLContext(configuration: upstream)
        pcap = try configuration.pcapPath.map { path in
            do {
                return try NIOWritePCAPHandler.SynchronizedFileSink.fileSinkWritingToFile(path: path) { _ in }
            } catch {
                throw ReplayError.file("\(path): cannot be written (\(error))")
            }
        }
    }

    /// Listens, relays and records until ``shutdown()`` or the session limit; each session goes
    /// to `onSession` as it ends (from any thread). Returns the number of sessions.
    public func run(onRunning: @Sendable (String) async -> Void = { _ in },
                    onSession: @escaping @Sendable (RecordedSession) -> Void) async throws -> Int {
        let server = try await bind()
        guard let address = server.channel.localAddress else { throw ReplayError.listen("no local address after binding") }
        let early = state.withLockedValue { state -> Bool in
            state.listener = server.channel
            return state.shuttingDown
        }
        if early { server.channel.close(promise: nil) }
        await onRunning(Self.describe(address))
        let count = NIOLockedValueBox(0)
        let limit = configuration.sessionLimit
        await withDiscardingTaskGroup { group in
            do {
                try await server.executeThenClose { inbound in
                    var accepted = 0
                    for try await session in inbound {
                        guard let session else { continue }
                        accepted += 1
                        group.addTask {
                            if let recorded = try? await session.get() {
                                count.withLockedValue { $0 += 1 }
                                onSession(recorded)
                            }
                        }
                        if let limit, accepted >= limit { server.channel.close(promise: nil) }
                    }
                }
            } catch {
                // The listener closed under the loop: the open sessions go on to their ends.
            }
        }
        try? await pcap?.close()
        keyLog?.close()
        return count.withLockedValue { $0 }
    }

    /// Stops accepting and ends every open session (each is written, marked as cut short).
    /// Safe from any thread.
    public func shutdown() {
        let (listener, open) = state.withLockedValue { state -> ((any Channel)?, [any Channel]) in
            state.shuttingDown = true
            return (state.listener, Array(state.open.values))
        }
        listener?.close(promise: nil)
        for channel in open { channel.pipeline.fireUserInboundEventTriggered(Interrupt()) }
    }

    /// Tells a session that the proxy is stopping: it is cut short and written.
    struct Interrupt: Sendable {}

    func bind() async throws -> NIOAsyncChannel<EventLoopFuture<RecordedSession>?, Never> {
        let configuration = self.configuration
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.backlog, value: 256)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.tcpOption(.tcp_nodelay), value: 1)
                // The client's bytes wait until the upstream is connected.
                .childChannelOption(ChannelOptions.autoRead, value: false)
                .bind(host: configuration.host, port: configuration.port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let number = self.state.withLockedValue { state -> Int? in
                            if let limit = configuration.sessionLimit, state.accepted >= limit { return nil }
                            if state.shuttingDown { return nil }
                            state.accepted += 1
                            state.open[state.accepted] = channel
                            return state.accepted
                        }
                        guard let number else {
                            channel.close(promise: nil)
                            return nil
                        }
                        let sync = channel.pipeline.syncOperations
                        if configuration.listenTLS, let clientTLS = self.clientTLS {
                            try sync.addHandler(NIOSSLServerHandler(context: clientTLS))
                        }
                        if let pcap = self.pcap {
                            // Behind TLS (STARTTLS puts its handler first), so it records plaintext.
                            try sync.addHandler(NIOWritePCAPHandler(mode: .server, fileSink: pcap.write))
                        }
                        let promise = channel.eventLoop.makePromise(of: RecordedSession.self)
                        let session = ProxySession(number: number, proxy: self, client: channel, promise: promise)
                        try sync.addHandler(ProxyLegHandler(session: session, side: .client))
                        promise.futureResult.whenComplete { _ in
                            _ = self.state.withLockedValue { $0.open.removeValue(forKey: number) }
                        }
                        return promise.futureResult
                    }
                }
        } catch {
            throw ReplayError.listen("\(configuration.host):\(configuration.port): cannot listen (\(error))")
        }
    }

    static func describe(_ address: SocketAddress) -> String {
        let host = address.ipAddress ?? "unknown"
        let port = address.port.map(String.init) ?? "0"
        if case .v6 = address { return "[\(host)]:\(port)" }
        return "\(host):\(port)"
    }
}
