import ArgumentParser
import Foundation
import SMTPCapture
import SMTPTLS
import SMTPCore
import SMTPFiles
import SMTPScenario
import SMTPTranscript

struct Capture: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Capture SMTP live on a network interface: transcripts, or one scenario file per session, as sessions end.",
        discussion: """
            Captures with libpcap (root or the CAP_NET_RAW capability is needed) and reads the \
            packets as 'transcript' and 'extract' read capture files. Once it is capturing, it \
            prints 'smtptape: capturing on IFACE' to standard error.

            Without -o, each session's transcript (--format, --data, --color as for 'transcript') \
            is printed as the session ends. With -o, each session is written as a scenario file \
            (IFACE-session-N.yaml) the moment it ends, whole, and its path printed, so a capture \
            that is killed keeps every session that had ended. Without --force, files of that \
            name already in the folder stop the capture before it begins (--format, --data and \
            --color do not apply with -o).

            SIGINT (Ctrl-C) or SIGTERM stops the capture: sessions still open are ended as \
            'capture ended with the connection open' (capture_ended) and printed or written too. \
            A second signal exits at once.

            Exit status: 0 stopped by a signal; 1 the capture failed after it began (the \
            interface went away), or a scenario file could not be written; 2 it could not begin \
            (no permission, no such interface, files in the way); 64 wrong arguments.

            Examples:
              smtptape capture --interface eth0
              smtptape capture --interface lo --filter 'tcp port 2525' -o scenarios
              smtptape capture --interface any --port 8025 --pcap mail.pcap
              smtptape capture --interface eth0 --format json > events.jsonl
            """
    )

    @Option(help: ArgumentHelp("The network interface to capture on, as 'ip link' or 'tcpdump -D' lists them ('any': all of them, on Linux).", valueName: "IFACE"))
    var interface: String

    @OptionGroup var capture: CaptureOptions
    @OptionGroup var secrets: SecretsOption
    @OptionGroup var rendering: TranscriptOptions

    // -o and --force as in OutputOptions, but -o is optional here: without it, transcripts.
    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("Write one scenario file per session into this folder (created if missing), instead of printing transcripts.", valueName: "DIR"))
    var output: String?

    @Flag(help: "Replace scenario files that already exist in the output folder (without it, the capture does not begin and the command exits 2).")
    var force = false

    @Option(help: ArgumentHelp("Also save the packets (those that pass --filter) to this pcap file; replaced if it exists.", valueName: "FILE"))
    var pcap: String?

    func validate() throws {
        if force, output == nil { throw ValidationError("--force applies to -o DIR.") }
        if interface.isEmpty { throw ValidationError("Name an interface with --interface (e.g. lo, eth0, any).") }
    }

    func run() throws {
        var folder: OutputFolder?
        if let output {
            let opened = try OutputOptions.open(output, force: force)
            if !force {
                let existing = opened.existing { Extract.isSessionFile($0, stem: interface) }
                if !existing.isEmpty { try OutputOptions.refuse(existing) }
            }
            folder = opened
        }
        let out = ByteOutput(descriptor: 1)
        var writeFailed = false
        let observer: any SessionObserver
        if let folder {
            let capturedTo = pcap.map(OutputFolder.baseName)
            let recorder = ScenarioRecorder(showSecrets: secrets.showSecrets) { info in
                Scenario.Origin(capture: capturedTo, connection: "\(info.client) -> \(info.server)", session: info.id, start: info.start.rfc3339)
            }
            // Written whole and moved into place as each session ends: nothing finished waits
            // for the capture to stop.
            recorder.onScenario = { [interface] info, scenario in
                do {
                    let (_, _, staged) = try Extract.stage(scenario, baseName: Extract.sessionBaseName(stem: interface, session: info.id), in: folder)
                    for path in try folder.publish(staged) { Standard.output(path) }
                } catch let conflict as OutputFolder.Conflict {
                    Standard.error("smtptape: \(conflict.existing.joined(separator: ", ")): already exists, not replaced (--force replaces existing files)")
                    writeFailed = true
                } catch {
                    Standard.error("smtptape: \(error)")
                    writeFailed = true
                }
            }
            observer = recorder
        } else {
            observer = rendering.renderer(output: out, showSecrets: secrets.showSecrets, flushesEachSession: true)
        }

        let extractor = SMTPExtractor(options: capture.extractionOptions, observer: observer)
        // Clients write their secrets as they connect: the key log is read again when a session's
        // keys are not in it yet.
        if let keys = try capture.keyLogStore(following: true) {
            for warning in keys.takeWarnings() { Standard.error("smtptape: warning: " + warning) }
            extractor.keys = keys
        }
        let live: LiveCapture
        do {
            live = try extractor.openLive(interface: interface, savingTo: pcap)
        } catch {
            Standard.error("smtptape: \(error.description)")
            throw ExitCode(error.exitCode)
        }
        let signals = Signals.onStop { count in
            if count > 1 { Foundation.exit(1) }
            live.stop()
        }
        Standard.error("smtptape: capturing on \(interface)")
        let report = extractor.read(live, whenQuiet: { out.flush() })
        withExtendedLifetime(signals) {}
        out.flush()
        if let folder { _ = try? folder.commit() }  // nothing is left staged: this removes the staging folder

        var status: Int32 = writeFailed ? 1 : 0
        if let error = report.error {
            Standard.error("smtptape: \(error.description)")
            status = max(status, error.exitCode)
        }
        for warning in report.warnings { Standard.error("smtptape: warning: " + warning) }
        if status != 0 { throw ExitCode(status) }
    }
}
