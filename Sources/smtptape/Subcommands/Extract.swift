import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPScenario
import SMTPTranscript

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one scenario file per SMTP session found in captures.",
        discussion: """
            Files are named after the capture and the session number \
            (mail-session-3.yaml, letters, digits, '.', '-' and '_' only) and written into the \
            output folder only. Sessions that cannot be replayed fully (encrypted after STARTTLS, \
            bytes missing from the capture) are still written, with an 'incomplete' field that \
            says what is missing. The paths written are printed one per line.

            Examples:
              smtptape extract Captures/swaks-sink-plain.pcap -o scenarios
              smtptape extract --session 2 --session 5 mail.pcapng -o scenarios
            """
    )

    @OptionGroup var capture: CaptureOptions

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The folder to write into; created if missing.", valueName: "DIR"))
    var output: String

    @Option(name: .customLong("session"), help: ArgumentHelp("Extract only this session number (repeatable); sessions are numbered across all captures, as in transcripts.", valueName: "N"))
    var sessions: [Int] = []

    func run() throws {
        let folder: OutputFolder
        do {
            folder = try OutputFolder(path: output)
        } catch {
            Standard.error("smtptape: \(error.description)")
            throw ExitCode(2)
        }
        var hashes: [String: String] = [:]
        let recorder = ScenarioRecorder(showSecrets: capture.showSecrets) { info in
            let name = OutputFolder.baseName(info.source)
            if hashes[info.source] == nil { hashes[info.source] = SHA256.file(info.source) }
            return Scenario.Origin(
                capture: name, sha256: hashes[info.source], connection: "\(info.client) -> \(info.server)",
                session: info.id, start: info.start.rfc3339)
        }
        var written: [String] = []
        var failure: String?
        let wanted = Set(sessions)
        recorder.onScenario = { info, scenario in
            guard wanted.isEmpty || wanted.contains(info.id) else { return }
            let fileName = OutputFolder.safeName(OutputFolder.stem(info.source)) + "-session-\(info.id).yaml"
            do throws(OutputFolder.Failure) {
                written.append(try folder.write(ScenarioWriter.yaml(scenario), to: fileName))
            } catch {
                failure = error.description
            }
        }
        var status = capture.run(into: recorder)
        let listing = written.joined(separator: "\n")
        if !listing.isEmpty { print(listing) }
        if let failure {
            Standard.error("smtptape: \(failure)")
            status = max(status, 1)
        }
        if !wanted.isEmpty, written.count < wanted.count {
            Standard.error("smtptape: warning: \(wanted.count - written.count) of the sessions named with --session were not found")
            status = max(status, 1)
        }
        if status != 0 { throw ExitCode(status) }
    }
}

extension OutputFolder {
    static func baseName(_ path: String) -> String { path.split(separator: "/").last.map(String.init) ?? path }

    static func stem(_ path: String) -> String {
        let base = baseName(path)
        if let dot = base.lastIndex(of: "."), dot != base.startIndex { return String(base[..<dot]) }
        return base
    }
}
