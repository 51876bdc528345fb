import ArgumentParser

@main
struct SMTPTape: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smtptape",
        abstract: "Read SMTP dialogues out of packet captures (files or live) and keep them as scenarios: transcripts, JSON Lines, messages, scenario files.",
        discussion: """
            Exit status: 0 success; 1 ran to the end but found problems (a damaged capture, \
            corrupt packets, no SMTP found); 2 nothing could be done (missing file, not a capture); \
            64 wrong arguments.
            """,
        version: "0.1.0",
        subcommands: SMTPTape.subcommands
    )
}

extension SMTPTape {
    /// Without the networking targets (SMTPTAPE_CORE_ONLY, see Package.swift) there is no `replay`.
    static var subcommands: [any ParsableCommand.Type] {
        var commands: [any ParsableCommand.Type] = [Transcript.self, Messages.self, Extract.self, Capture.self, Check.self, Format.self]
        #if canImport(SMTPReplay)
        commands.append(Replay.self)
        #endif
        #if canImport(SMTPProxy)
        commands.append(Record.self)
        #endif
        return commands
    }
}
