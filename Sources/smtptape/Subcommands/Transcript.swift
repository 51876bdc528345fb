import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPTranscript

struct Transcript: ParsableCommand {
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
    @OptionGroup var rendering: TranscriptOptions

    func validate() throws {
        if inputs.isEmpty { throw ValidationError("Name at least one capture or scenario file ('-' for standard input).") }
    }

    func run() throws {
        let output = ByteOutput(descriptor: 1)
        let observer = rendering.renderer(output: output, showSecrets: secrets.showSecrets)
        let reader = try InputReader(options: capture, observer: observer)
        reader.read(inputs, scenarios: true)
        output.flush()
        let status = reader.finish()
        if status != 0 { throw ExitCode(status) }
    }
}
