import ArgumentParser
import SMTPCapture
import SMTPCore
import SMTPFiles
import SMTPScenario
import SMTPTranscript

struct Extract: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write one scenario file per SMTP session found in captures.",
        discussion: """
            Files are named after the capture and the session number \
            (mail-session-3.yaml, letters, digits, '.', '-' and '_' only; stdin-session-3.yaml for \
            standard input) and written into the output folder only. A session the capture does not \
            hold whole (bytes missing, encrypted after STARTTLS, a line cut off) is written up to \
            that point, with an 'incomplete' field that says where and why. A message over 1 MiB \
            is written beside its scenario as an .eml file that the scenario names \
            (mail-session-3-s1-step7.eml: session 1, step 7), its exact content. Files that already \
            exist are not replaced without --force (nothing is written then, exit 2). The paths \
            written are printed one per line.

            Examples:
              smtptape extract Captures/swaks-sink-plain.pcap -o scenarios
              smtptape extract --session 2 --session 5 mail.pcapng -o scenarios
            """
    )

    @Argument(help: ArgumentHelp("pcap or pcapng files, read in order; '-' is standard input. Session numbers run on across them.", valueName: "capture"))
    var captures: [String]

    @OptionGroup var capture: CaptureOptions
    @OptionGroup var secrets: SecretsOption
    @OptionGroup var output: OutputOptions

    @Option(name: .customLong("session"), help: ArgumentHelp("Extract only this session number (repeatable); sessions are numbered across all captures, as in transcripts.", valueName: "N"))
    var sessions: [Int] = []

    func validate() throws {
        if captures.isEmpty { throw ValidationError("Name at least one capture file ('-' for standard input).") }
    }

    /// Stands in for the capture's SHA-256 until the whole capture was read (it is hashed while
    /// it is read, once); then each scenario written from it gets the digest in place.
    static let pendingDigest = String(repeating: "0", count: 63) + "x"

    func run() throws {
        let folder = try output.open()
        // Scenarios written for the capture being read: their names and where the digest goes.
        var awaitingDigest: [(name: String, offset: Int)] = []
        var failure: String?
        let wanted = Set(sessions)
        var found = Set<Int>()
        let recorder = ScenarioRecorder(showSecrets: secrets.showSecrets) { info in
            Scenario.Origin(
                capture: OutputFolder.baseName(info.source), sha256: Self.pendingDigest,
                connection: "\(info.client) -> \(info.server)", session: info.id, start: info.start.rfc3339)
        }
        recorder.onScenario = { info, scenario in
            found.insert(info.id)
            guard wanted.isEmpty || wanted.contains(info.id) else { return }
            do throws(FileError) {
                let (name, bytes, _) = try Self.stage(scenario, baseName: Self.sessionBaseName(stem: OutputFolder.stem(info.source), session: info.id), in: folder)
                if let offset = Self.offset(of: Array(Self.pendingDigest.utf8), in: bytes) {
                    awaitingDigest.append((name, offset))
                }
            } catch {
                if failure == nil { failure = error.description }
            }
        }
        let reader = try InputReader(options: capture, observer: recorder)
        reader.read(captures, scenarios: false, hashing: true) { input in
            let digest = Array(input.finishDigest().utf8)
            for (name, offset) in awaitingDigest {
                do throws(FileError) {
                    try folder.patch(staged: name, digest, at: offset)
                } catch {
                    if failure == nil { failure = error.description }
                }
            }
            awaitingDigest.removeAll()
        }
        var status = reader.finish()
        if let failure {
            Standard.error("smtptape: \(failure)")
            status = max(status, 1)
        }
        let missing = sessions.filter { !found.contains($0) }.sorted()
        if !missing.isEmpty {
            let names = missing.map(String.init).joined(separator: ", ")
            let held = found.isEmpty ? "no sessions" : "sessions \(found.min()!) to \(found.max()!)"
            Standard.error("smtptape: warning: --session \(names): no such session (the input\(captures.count == 1 ? "" : "s") held \(held))")
            status = max(status, 1)
        }
        let written = try output.commit(folder)
        if !written.isEmpty { print(written.joined(separator: "\n")) }
        if status != 0 { throw ExitCode(status) }
    }

    /// `STEM-session-N`, the stem made safe: the base name of a session's scenario file and of the
    /// message files beside it (`extract` names them after the capture, `capture` after the interface).
    static func sessionBaseName(stem: String, session: Int) -> String {
        OutputFolder.safeName(stem) + "-session-\(session)"
    }

    /// Whether `name` is a file that ``sessionBaseName(stem:session:)`` starts for some session.
    static func isSessionFile(_ name: String, stem: String) -> Bool {
        let prefix = OutputFolder.safeName(stem) + "-session-"
        return name.hasPrefix(prefix) && name.dropFirst(prefix.count).first.map { $0.isASCII && $0.isNumber } == true
    }

    /// Stages a session's scenario as `BASE.yaml` and, beside it, each message over 1 MiB
    /// (`message-file`), with the same refusal to overwrite and the same --force.
    /// - Returns: the scenario's file name and bytes, and every name staged, message files first
    ///   (to be published before the scenario that names them).
    static func stage(_ scenario: Scenario, baseName: String, in folder: OutputFolder) throws(FileError) -> (name: String, bytes: [UInt8], staged: [String]) {
        let (placed, messageFiles) = scenario.placingLargeMessages(baseName: baseName)
        let name = baseName + ".yaml"
        let bytes = Array(ScenarioWriter.yaml(placed).utf8)
        try folder.write(bytes, to: name)
        for file in messageFiles { try folder.write(file.content, to: file.name) }
        return (name, bytes, messageFiles.map(\.name) + [name])
    }

    static func offset(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard needle.count <= haystack.count else { return nil }
        for start in 0...(haystack.count - needle.count) where haystack[start] == needle[0] && Array(haystack[start..<(start + needle.count)]) == needle {
            return start
        }
        return nil
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
