import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPTranscript

struct Messages: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write every message transferred in captures as an .eml file.",
        discussion: """
            Files are named by session and message number only (session-0001-message-01.eml), \
            never by anything inside the capture. DATA is dot-unstuffed; BDAT chunks are joined as \
            sent. A message the capture cut short is written as ...-message-NN.incomplete.eml and \
            holds the message up to the first byte the capture missed. Files that already exist \
            are not replaced without --force (nothing is written then, exit 2). The paths \
            written are printed, one per line.

            Example:
              smtptape messages Captures/smtplib-sink-multi.pcap -o /tmp/messages
            """
    )

    @Argument(help: ArgumentHelp("pcap or pcapng files, read in order; '-' is standard input.", valueName: "capture"))
    var captures: [String]

    @OptionGroup var capture: CaptureOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if captures.isEmpty { throw ValidationError("Name at least one capture file ('-' for standard input).") }
    }

    func run() throws {
        let folder = try output.open()
        let writer = MessageFileWriter(folder: folder)
        let reader = try InputReader(options: capture, observer: writer)
        reader.read(captures, scenarios: false)
        var status = reader.finish()
        if let error = writer.error {
            Standard.error("smtptape: \(error.description)")
            status = max(status, 1)
        }
        let written = try output.commit(folder)
        let listing = ByteOutput(descriptor: 1)
        for path in written { listing.append(path + "\n") }
        listing.flush()
        if status != 0 { throw ExitCode(status) }
    }
}
