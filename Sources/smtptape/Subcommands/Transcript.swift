import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPTranscript

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
            the session began, message data, and markers for gaps, TLS and how the connection ended, \
            then a summary. Captures and scenario files can be mixed; '-' reads standard input.

            Examples:
              smtptape transcript Captures/swaks-sink-plain.pcap
              smtptape transcript --data full --port 8025 mail.pcapng
              smtptape transcript --format json --filter 'host 192.0.2.7' *.pcap | jq .
              smtptape transcript Scenarios/greylisting.yaml
              tcpdump -w - -i lo port 25 | smtptape transcript -
            """
    )

    @Argument(help: ArgumentHelp("Captures (pcap, pcapng) or scenario files, read in order; '-' is standard input. Session numbers run on across them.", valueName: "input"))
    var inputs: [String]

    @OptionGroup var capture: CaptureOptions
    @OptionGroup var secrets: SecretsOption

    @Option(help: "Output format: text for people, json for JSON Lines (one event per line).")
    var format: Format = .text

    @Option(help: ArgumentHelp("Message data in text transcripts: full, headers (the header section), or none. JSON always has all of it.", valueName: "full|headers|none"))
    var data: DataDisplay = .headers

    @Option(help: "Colour in text transcripts: auto (on a terminal), always, never.")
    var color: ColourChoice = .auto

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("Name at least one capture or scenario file ('-' for standard input).") }
    }

    func run() throws {
        let output = ByteOutput(descriptor: 1)
        let observer: any SessionObserver
        switch format {
        case .json:
            observer = JSONTranscriptWriter(output: output, showSecrets: secrets.showSecrets)
        case .text:
            let colour = color == .always || (color == .auto && isTerminal(1))
            observer = TextTranscriptRenderer(output: output, data: data, showSecrets: secrets.showSecrets, colour: colour)
        }
        let reader = InputReader(options: capture, observer: observer)
        reader.read(inputs, scenarios: true)
        output.flush()
        let status = reader.finish()
        if status != 0 { throw ExitCode(status) }
    }
}
