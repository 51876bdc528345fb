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
            sent. A message the capture cut short is written as ...-message-NN.incomplete.eml. \
            The names of the files written are printed, one per line.

            Example:
              smtptape messages Captures/smtplib-sink-multi.pcap -o /tmp/messages
            """
    )

    @OptionGroup var capture: CaptureOptions

    @Option(name: [.short, .customLong("output")], help: ArgumentHelp("The folder to write into; created if missing.", valueName: "DIR"))
    var output: String

    func run() throws {
        let writer: MessageFileWriter
        do {
            writer = try MessageFileWriter(directory: output)
        } catch {
            Standard.error("smtptape: \(error.description)")
            throw ExitCode(2)
        }
        var status = capture.run(into: writer)
        let listing = ByteOutput(descriptor: 1)
        for path in writer.written { listing.append(path + "\n") }
        listing.flush()
        if let error = writer.error {
            Standard.error("smtptape: \(error.description)")
            status = max(status, 1)
        }
        if status != 0 { throw ExitCode(status) }
    }
}
