#if canImport(SMTPReplay)
import ArgumentParser
import Dispatch
import Foundation
import SMTPCore
import SMTPFiles
import SMTPReplay
import SMTPScenario
import SMTPTranscript

struct Replay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve scenarios as a scripted SMTP server and report how each client kept to them.",
        discussion: """
            Prints the bound address (HOST:PORT) as the first line of standard output, then serves \
            until interrupted (SIGINT, SIGTERM) or until --sessions sessions have ended. Each \
            connection plays a scenario session from its start: with --assign order (the default) \
            the sessions in order, wrapping around; with --assign command the session whose first \
            step matches the client's first command. A verdict for each session goes to standard \
            error as it ends (and to --report as JSON Lines, --junit as JUnit XML).

            Exit status: 0 when every session passed and no scripted session went unused; 1 when \
            one failed or went unused (sessions interrupted by a signal fail); 2 when the server \
            could not start (a scenario that check rejects, an address that cannot be bound, \
            implicit-TLS and plain sessions without --listen-tls); 64 wrong arguments.

            Examples:
              smtptape replay Scenarios/auth-failure.yaml --listen 127.0.0.1:2525
              smtptape replay recorded.yaml --listen 127.0.0.1:0 --sessions 1 --report verdict.jsonl
              smtptape replay Scenarios/starttls-required.yaml --tls-ca-out ca.pem --keylog-out keys.log
            """
    )

    @Argument(help: ArgumentHelp("Scenario files.", valueName: "scenario"))
    var files: [String]

    @OptionGroup var server: ListenOptions

    @Option(help: ArgumentHelp("Seconds of client silence before 421 and close.", valueName: "seconds"))
    var idleTimeout: Double = 300

    @Option(help: ArgumentHelp("Exit after this many sessions have ended.", valueName: "n"))
    var sessions: Int?

    @Option(help: ArgumentHelp("How connections get sessions: order (in order, wrapping around) or command (by the client's first command).", valueName: "order|command"))
    var assign: Assignment = .order

    @Flag(help: "Answer unscripted commands with default replies instead of failing the session.")
    var lenient = false

    @Option(help: ArgumentHelp("After a mismatch reply: stay at the step (reply) or close the connection (close).", valueName: "reply|close"))
    var onMismatch: MismatchAction = .reply

    @Option(help: ArgumentHelp("The reply to a mismatch instead of the default 503 that names both lines, e.g. '451 4.3.0 Try again'.", valueName: "reply"))
    var mismatchReply: String?

    @Option(help: ArgumentHelp("fast: only 'delay' is waited; recorded: also the think times extract recorded ('recorded-delay').", valueName: "fast|recorded"))
    var timing: Timing = .fast

    @Option(help: ArgumentHelp("With --timing recorded: play the recorded think times this many times faster.", valueName: "x"))
    var speed: Double = 1

    @Option(help: ArgumentHelp("Write each verdict as a JSON line as sessions end, then a summary.", valueName: "file"))
    var report: String?

    @Option(help: ArgumentHelp("Write JUnit XML (one test case per session) at the end.", valueName: "file"))
    var junit: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Save the messages received as .eml files in this folder.", valueName: "dir"))
    var output: String?

    @Flag(help: "Replace files that already exist in the -o folder.")
    var force = false

    @Flag(help: "Keep AUTH credentials in mismatch replies, verdicts and reports.")
    var showSecrets = false

    enum Assignment: String, ExpressibleByArgument { case order, command }
    enum MismatchAction: String, ExpressibleByArgument { case reply, close }
    enum Timing: String, ExpressibleByArgument { case fast, recorded }

    func validate() throws {
        if files.isEmpty { throw ValidationError("Name at least one scenario file.") }
        if idleTimeout <= 0 { throw ValidationError("--idle-timeout must be more than 0 seconds.") }
        if let sessions, sessions < 1 { throw ValidationError("--sessions must be at least 1.") }
        if speed <= 0 { throw ValidationError("--speed must be more than 0.") }
        if let mismatchReply, Array(mismatchReply.utf8).withUnsafeBytes({ SMTPReplyLine.code($0) }) == nil {
            throw ValidationError("--mismatch-reply must begin with a reply code, e.g. '451 4.3.0 Try again'.")
        }
    }

    func run() async throws {
        // Scenarios first: one that check rejects is refused with its diagnostics.
        var scenarios: [Scenario] = []
        var refused = false
        for file in files {
            let result = ScenarioReader.read(file: file)
            for diagnostic in result.diagnostics { Standard.error(diagnostic.description) }
            if let scenario = result.scenario, result.diagnostics.isEmpty {
                scenarios.append(scenario)
            } else {
                refused = true
            }
        }
        if refused { throw ExitCode(2) }

        let (host, port) = try server.address()
        var configuration = ReplayConfiguration(
            host: host, port: port, implicitTLS: server.listenTLS, keyLogPath: server.keylogOut, idleTimeout: idleTimeout,
            sessionLimit: sessions, assignByCommand: assign == .command,
            options: SessionPlayer.Options(
                lenient: lenient, closeOnMismatch: onMismatch == .close,
                mismatchReply: mismatchReply.map { Array($0.utf8) + [0x0D, 0x0A] },
                recordedTiming: timing == .recorded, speed: speed, showSecrets: showSecrets))
        let reporter: VerdictSink
        let replayServer: ReplayServer
        do {
            configuration.certificate = try server.certificate()
            reporter = try VerdictSink(report: report, output: output, force: force)
            replayServer = try ReplayServer(scenarios: scenarios, configuration: configuration)
            try server.writeCA(replayServer.caPEM, missing: "no scenario uses TLS, so no certificate was made")
        } catch let error as ExitCode {
            throw error
        } catch {
            Standard.error("smtptape: \(error)")
            throw ExitCode(2)
        }

        // SIGINT/SIGTERM: stop accepting, interrupt the open sessions; a second signal exits at once.
        let signals = Signals.onStop { count in
            if count > 1 { Foundation.exit(1) }
            replayServer.shutdown()
        }
        let verdicts: [Verdict]
        do {
            verdicts = try await replayServer.run(
                onRunning: { address in Standard.output(address) },
                onVerdict: { reporter.add($0) })
        } catch {
            Standard.error("smtptape: \(error)")
            throw ExitCode(2)
        }
        _ = signals
        let unused = replayServer.unused(after: verdicts)
        let failed = reporter.finish(verdicts: verdicts, unused: unused, junit: junit)
        Standard.error(VerdictReport.summaryText(verdicts, unused: unused))
        if failed || !verdicts.allSatisfy(\.passed) || !unused.isEmpty { throw ExitCode(1) }
    }
}

/// Where verdicts go as sessions end: standard error, the JSON Lines report, message files.
final class VerdictSink: @unchecked Sendable {
    let lock = NSLock()
    let report: FileHandle?
    let reportPath: String?
    let folder: OutputFolder?
    var problems: [String] = []

    init(report: String?, output: String?, force: Bool) throws {
        if let report {
            guard FileManager.default.createFile(atPath: report, contents: nil),
                  let handle = FileHandle(forWritingAtPath: report) else {
                throw ReplayError.file("\(report): cannot be written")
            }
            self.report = handle
        } else {
            self.report = nil
        }
        reportPath = report
        do {
            folder = try output.map { path throws(FileError) in try OutputFolder(path: path, replaceExisting: force) }
        } catch {
            throw ReplayError.file(error.description)
        }
    }

    func add(_ verdict: Verdict) {
        lock.lock()
        defer { lock.unlock() }
        Standard.error(VerdictReport.text(verdict))
        report?.write(Data((VerdictReport.json(verdict) + "\n").utf8))
        guard let folder else { return }
        for (index, message) in verdict.messages.enumerated() {
            let name = MessageFileWriter.fileName(session: verdict.session, message: index + 1, complete: !messageCut(message))
            do {
                let file = try folder.create(name)
                try file.write(message.content)
                file.close()
            } catch {
                problems.append("\(folder.path)/\(name): \(error.message)")
            }
        }
    }

    func messageCut(_ message: Verdict.ReceivedMessage) -> Bool {
        message.content.count < message.size
    }

    /// Ends the report and writes the JUnit file; returns whether writing something failed.
    func finish(verdicts: [Verdict], unused: [String], junit: String?) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        report?.write(Data((VerdictReport.jsonSummary(verdicts, unused: unused) + "\n").utf8))
        try? report?.close()
        if let junit {
            do {
                try ReplacedFile.write(Array(VerdictReport.junit(verdicts, unused: unused).utf8), to: junit)
            } catch {
                problems.append("\(junit): \(error)")
            }
        }
        if let folder {
            do {
                _ = try folder.commit()
            } catch {
                problems.append("\(error)")
            }
        }
        for problem in problems { Standard.error("smtptape: \(problem)") }
        return !problems.isEmpty
    }
}
#endif
