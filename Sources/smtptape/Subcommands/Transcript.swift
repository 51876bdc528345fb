import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPTranscript

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension DataDisplay: ExpressibleByArgument {}

struct Transcript: ParsableCommand {
    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text, json
    }

    enum ColourChoice: String, ExpressibleByArgument, CaseIterable {
        case auto, always, never
    }

    static let configuration = CommandConfiguration(
        abstract: "Print the SMTP dialogues in captures or scenarios as readable transcripts or JSON Lines.",
        discussion: """
            Each session shows who talked to whom, every command and reply line with its time since \
            the session began, message data, and markers for gaps, TLS and aborts, then a summary.

            Examples:
              smtptape transcript Captures/swaks-sink-plain.pcap
              smtptape transcript --data full --port 8025 mail.pcapng
              smtptape transcript --format json --filter 'host 192.0.2.7' *.pcap | jq .
              smtptape transcript Scenarios/greylisting.yaml
            """
    )

    @OptionGroup var capture: CaptureOptions

    @Option(help: "Output format: text for people, json for JSON Lines (one event per line).")
    var format: Format = .text

    @Option(help: ArgumentHelp("Message data in text transcripts: full, headers (the header section), or none. JSON always has all of it.", valueName: "full|headers|none"))
    var data: DataDisplay = .headers

    @Option(help: "Colour in text transcripts: auto (on a terminal), always, never.")
    var color: ColourChoice = .auto

    func run() throws {
        let output = ByteOutput(descriptor: 1)
        let observer: any SessionObserver
        switch format {
        case .json:
            observer = JSONTranscriptWriter(output: output, showSecrets: capture.showSecrets)
        case .text:
            let colour = color == .always || (color == .auto && isTerminal(1))
            observer = TextTranscriptRenderer(output: output, data: data, showSecrets: capture.showSecrets, colour: colour)
        }
        let status = capture.run(into: observer, scenarios: true, beforeWarnings: { output.flush() })
        output.flush()
        if status != 0 { throw ExitCode(status) }
    }
}
