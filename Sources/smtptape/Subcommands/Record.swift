#if canImport(SMTPProxy)
import ArgumentParser
import Dispatch
import Foundation
import SMTPCore
import SMTPFiles
import SMTPProxy
import SMTPReplay
import SMTPScenario

struct Record: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Relay SMTP clients to a real server and record each session as a scenario.",
        discussion: """
            A man-in-the-middle proxy: each client connection is relayed to --upstream, byte for \
            byte, and when the session ends its scenario is written to the -o folder as \
            START-NNNN.yaml (the session's start time in UTC and its number; never a name the \
            peers sent), the same scenario extract makes of a capture of the same traffic. \
            STARTTLS is intercepted: the proxy runs TLS to the server (verified against the \
            system's roots or --upstream-ca) and to the client (with --tls-cert, or a certificate \
            made at start whose CA --tls-ca-out writes), and records the plaintext; with --tls \
            passthrough it records up to STARTTLS and relays the encrypted bytes untouched.

            Prints the bound address (HOST:PORT) as the first line of standard output, then each \
            file as it is written. Runs until SIGINT or SIGTERM (open sessions are written, marked \
            as cut short) or until --sessions sessions have ended. Exit status: 0; 1 when a \
            session could not be written; 2 when the proxy could not start; 64 wrong arguments.

            Examples:
              smtptape record --upstream smtp.example.com:587 -o recorded --tls-ca-out ca.pem
              smtptape record --listen 127.0.0.1:0 --upstream 127.0.0.1:25 -o recorded --sessions 1 --transcript
            """
    )

    @Option(help: ArgumentHelp("The real server: HOST:PORT.", valueName: "host:port"))
    var upstream: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The folder for the scenarios (created if missing).", valueName: "dir"))
    var output: String

    @OptionGroup var server: ListenOptions

    @Flag(help: "Implicit TLS (SMTPS, port 465) towards the server.")
    var upstreamTLS = false

    @Option(help: ArgumentHelp("The CA to verify the server with (PEM); the system's roots otherwise.", valueName: "file"))
    var upstreamCA: String?

    @Flag(help: "Do not verify the server's certificate.")
    var insecureUpstream = false

    @Option(help: ArgumentHelp("STARTTLS: intercept (record the plaintext of both sides) or passthrough (record up to STARTTLS).", valueName: "intercept|passthrough"))
    var tls: TLSHandling = .intercept

    @Option(help: ArgumentHelp("Also write every session's plaintext dialogue as a pcap (needs --show-secrets).", valueName: "file"))
    var pcap: String?

    @Flag(help: "Also write each session's transcript beside its scenario (START-NNNN.txt).")
    var transcript = false

    @Option(help: ArgumentHelp("Exit after this many sessions have ended.", valueName: "n"))
    var sessions: Int?

    @Flag(help: "Replace files that already exist in the -o folder.")
    var force = false

    @Flag(help: "Keep AUTH credentials in scenarios and transcripts.")
    var showSecrets = false

    enum TLSHandling: String, ExpressibleByArgument { case intercept, passthrough }

    func validate() throws {
        if insecureUpstream, upstreamCA != nil { throw ValidationError("--insecure-upstream and --upstream-ca contradict each other.") }
        if pcap != nil, !showSecrets {
            throw ValidationError("--pcap holds the dialogue in clear, AUTH credentials included: add --show-secrets to say that is what you want.")
        }
        if let sessions, sessions < 1 { throw ValidationError("--sessions must be at least 1.") }
        _ = try Self.upstreamAddress(upstream)
    }

    static func upstreamAddress(_ text: String) throws -> (host: String, port: Int) {
        let (host, port) = try ListenOptions.address(text, flag: "--upstream")
        guard port > 0 else { throw ValidationError("--upstream needs a port other than 0: '\(text)'") }
        return (host, port)
    }

    func run() async throws {
        let (host, port) = try server.address()
        let (upstreamHost, upstreamPort) = try Self.upstreamAddress(upstream)
        var configuration = RecordConfiguration(
            host: host, port: port, listenTLS: server.listenTLS, upstreamHost: upstreamHost, upstreamPort: upstreamPort,
            upstreamTLS: upstreamTLS, upstreamCAFile: upstreamCA, insecureUpstream: insecureUpstream,
            keyLogPath: server.keylogOut, passthrough: tls == .passthrough, pcapPath: pcap, sessionLimit: sessions)
        let proxy: RecordProxy
        let sink: RecordingSink
        do {
            configuration.certificate = try server.certificate()
            sink = try RecordingSink(folder: output, force: force)
            proxy = try RecordProxy(configuration: configuration, transcripts: transcript, showSecrets: showSecrets)
            try server.writeCA(proxy.caPEM, missing: "no certificate was made (--tls passthrough without --listen-tls)")
        } catch {
            Standard.error("smtptape: \(error)")
            throw ExitCode(2)
        }
        let signals = Signals.onStop { count in
            if count > 1 { Foundation.exit(1) }
            proxy.shutdown()
        }
        do {
            _ = try await proxy.run(onRunning: { Standard.output($0) }, onSession: { sink.write($0) })
        } catch {
            Standard.error("smtptape: \(error)")
            throw ExitCode(2)
        }
        _ = signals
        if sink.failed { throw ExitCode(1) }
    }
}

/// Writes each recorded session as it ends: the scenario (and transcript), staged and then moved
/// into the folder whole.
final class RecordingSink: @unchecked Sendable {
    let lock = NSLock()
    let folder: OutputFolder
    var failed = false

    init(folder path: String, force: Bool) throws {
        do {
            folder = try OutputFolder(path: path, replaceExisting: force)
        } catch {
            throw ReplayError.file(error.description)
        }
    }

    /// `20261129T110700Z-0001`: the start in UTC, to the second, and the session's number.
    static func name(_ session: RecordedSession) -> String {
        let digits = session.info.start.rfc3339.prefix(19).filter { $0.isNumber || $0 == "T" }
        let number = String(session.number)
        return digits + "Z-" + String(repeating: "0", count: max(0, 4 - number.count)) + number
    }

    func write(_ session: RecordedSession) {
        lock.lock()
        defer { lock.unlock() }
        let name = Self.name(session)
        var names = [name + ".yaml"]
        do {
            // A message over 1 MiB goes beside the scenario (`message-file`), as extract does.
            let (scenario, messageFiles) = session.scenario.placingLargeMessages(baseName: name)
            for file in messageFiles {
                try folder.write(file.content, to: file.name)
                // Published before the scenario that names them.
                names.insert(file.name, at: 0)
            }
            try folder.write(Array(ScenarioWriter.yaml(scenario).utf8), to: name + ".yaml")
            if let transcript = session.transcript {
                names.append(name + ".txt")
                try folder.write(transcript, to: name + ".txt")
            }
            for path in try folder.publish(names) { Standard.output(path) }
            Standard.error("smtptape: session \(session.number) (\(session.info.client) -> \(session.info.server)): \(session.scenario.sessions.first?.steps.count ?? 0) steps; \(session.ending)")
        } catch let conflict as OutputFolder.Conflict {
            failed = true
            Standard.error("smtptape: \(conflict.existing.joined(separator: ", ")): already exists, not replaced (use --force)")
        } catch {
            failed = true
            Standard.error("smtptape: session \(session.number): \(error)")
        }
    }
}
#endif
