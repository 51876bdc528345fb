import Foundation
import SMTPCore
import SMTPReplay
import SMTPScenario

/// A replay server for a test: where it listens, and what to trust for TLS.
public struct ReplayEndpoint: Sendable {
    /// `127.0.0.1` (or the host asked for).
    public let host: String
    public let port: Int
    /// The CA (PEM) that signed the server's certificate, when TLS is in play and the certificate
    /// was made for this run: give it to the client under test.
    public let caPEM: String?
}

/// What a replay run found: a verdict per session, and the scripted sessions no client played.
public struct ReplayOutcome: Sendable, CustomStringConvertible {
    public let verdicts: [Verdict]
    /// Scripted sessions nobody played (`name (session N)`).
    public let unused: [String]

    /// Every session passed its script and none went unused.
    public var passed: Bool { verdicts.allSatisfy(\.passed) && unused.isEmpty }

    /// The messages the server received, in order.
    public var messages: [Verdict.ReceivedMessage] { verdicts.flatMap(\.messages) }

    /// What went wrong (or that nothing did), for a test failure message.
    public var description: String {
        (verdicts.map(VerdictReport.text) + [VerdictReport.summaryText(verdicts, unused: unused)]).joined(separator: "\n")
    }
}

/// Options for an in-process replay server.
public struct ReplayTestOptions: Sendable {
    public var lenient: Bool
    public var closeOnMismatch: Bool
    /// `--assign command`: choose the session by the client's first command.
    public var assignByCommand: Bool
    /// Serve TLS from the first byte (SMTPS).
    public var implicitTLS: Bool
    /// Honour the recorded think times.
    public var recordedTiming: Bool
    public var idleTimeout: Double
    /// How long to wait, after the test body returns, for sessions still open to end.
    public var drainTimeout: Double

    public init(lenient: Bool = false, closeOnMismatch: Bool = false, assignByCommand: Bool = false, implicitTLS: Bool = false,
                recordedTiming: Bool = false, idleTimeout: Double = 30, drainTimeout: Double = 2) {
        self.lenient = lenient
        self.closeOnMismatch = closeOnMismatch
        self.assignByCommand = assignByCommand
        self.implicitTLS = implicitTLS
        self.recordedTiming = recordedTiming
        self.idleTimeout = idleTimeout
        self.drainTimeout = drainTimeout
    }
}

/// Failures that keep a replay from starting.
public struct ReplayTestError: Error, CustomStringConvertible {
    public let description: String
}

/// Runs `body` against a replay server playing `scenarios` on a free loopback port, then waits for
/// the sessions to end (interrupting any still open after `drainTimeout`) and returns the outcome.
///
/// ```swift
/// let outcome = try await withReplayServer(playing: [scenario]) { server in
///     try await myMailer.send(host: server.host, port: server.port)
/// }
/// #expect(outcome.passed, "\(outcome)")
/// ```
public func withReplayServer(playing scenarios: [Scenario], options: ReplayTestOptions = .init(),
                             _ body: (ReplayEndpoint) async throws -> Void) async throws -> ReplayOutcome {
    let configuration = ReplayConfiguration(
        host: "127.0.0.1", port: 0, implicitTLS: options.implicitTLS, idleTimeout: options.idleTimeout,
        assignByCommand: options.assignByCommand,
        options: SessionPlayer.Options(lenient: options.lenient, closeOnMismatch: options.closeOnMismatch,
                                       recordedTiming: options.recordedTiming))
    let server: ReplayServer
    do {
        server = try ReplayServer(scenarios: scenarios, configuration: configuration)
    } catch {
        throw ReplayTestError(description: "\(error)")
    }
    let (addresses, continuation) = AsyncStream.makeStream(of: String.self)
    let running = Task {
        try await server.run(onRunning: { address in continuation.yield(address); continuation.finish() })
    }
    var iterator = addresses.makeAsyncIterator()
    guard let address = await iterator.next() else {
        _ = try await running.value
        throw ReplayTestError(description: "the replay server did not start")
    }
    let port = Int(address.split(separator: ":").last ?? "") ?? 0
    let endpoint = ReplayEndpoint(host: "127.0.0.1", port: port, caPEM: server.caPEM)
    do {
        try await body(endpoint)
    } catch {
        server.shutdown()
        _ = try? await running.value
        throw error
    }
    // Sessions the client closed end on their own; give them a moment, then interrupt the rest.
    let drain = Task {
        try? await Task.sleep(nanoseconds: UInt64(options.drainTimeout * 1e9))
        server.shutdown()
    }
    server.stopAccepting()
    let verdicts = try await running.value
    drain.cancel()
    return ReplayOutcome(verdicts: verdicts, unused: server.unused(after: verdicts))
}

/// Reads a scenario file and runs `body` against it (see ``withReplayServer(playing:options:_:)``).
public func withReplayServer(scenarioFile path: String, options: ReplayTestOptions = .init(),
                             _ body: (ReplayEndpoint) async throws -> Void) async throws -> ReplayOutcome {
    let data: Data
    do {
        data = try Data(contentsOf: URL(fileURLWithPath: path))
    } catch {
        throw ReplayTestError(description: "\(path): cannot be read (\(error.localizedDescription))")
    }
    // Message files (`message-file`) are read from the scenario's folder.
    let folder = URL(fileURLWithPath: path).deletingLastPathComponent().path
    let result = ScenarioReader.parse(bytes: Array(data), file: path, baseFolder: folder)
    guard let scenario = result.scenario, result.diagnostics.isEmpty else {
        throw ReplayTestError(description: result.diagnostics.map(\.description).joined(separator: "\n"))
    }
    return try await withReplayServer(playing: [scenario], options: options, body)
}
