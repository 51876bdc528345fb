import ArgumentParser
import SMTPFiles
import SMTPScenario

struct Format: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite scenario files in canonical form.",
        discussion: """
            The canonical form is written from the parsed scenario alone (comments are dropped: \
            keep remarks in 'note' fields). Message files beside a scenario ('message-file') are \
            read to check them, never rewritten. Files with problems are reported as by 'check' and \
            left alone. With --check nothing is written: files not in canonical form are named \
            and the exit status is 1. '-' reads standard input and prints the canonical form.

            Examples:
              smtptape format Scenarios/*.yaml
              smtptape format --check Scenarios/*.yaml
            """
    )

    @Argument(help: ArgumentHelp("Scenario files; '-' is standard input.", valueName: "scenario"))
    var files: [String]

    @Flag(help: "Only report files that are not in canonical form.")
    var check = false

    func validate() throws {
        if files.isEmpty { throw ValidationError("Name at least one scenario file.") }
    }

    func run() throws {
        var status: Int32 = 0
        for file in files {
            let result: ScenarioReadResult
            let current: [UInt8]?
            do {
                let input = try InputSource(path: file)
                let bytes = try input.readAll(limit: Scenario.sizeLimit)
                current = bytes
                result = ScenarioReader.parse(bytes: bytes, file: input.path == "-" ? "stdin" : file, baseFolder: FileBeside.folder(of: file))
            } catch {
                Standard.error("smtptape: \(error.description)")
                status = 2
                continue
            }
            guard let scenario = result.scenario else {
                for diagnostic in result.diagnostics { Standard.error(diagnostic.description) }
                status = max(status, result.unreadable ? 2 : 1)
                continue
            }
            let canonical = Array(ScenarioWriter.yaml(scenario).utf8)
            if file == "-" {
                if check {
                    if current != canonical { print("stdin: not in canonical form"); status = max(status, 1) }
                } else {
                    canonical.withUnsafeBytes { _ = StandardStream.write($0, to: 1) }
                }
                continue
            }
            if current == canonical { continue }
            if check {
                print("\(file): not in canonical form")
                status = max(status, 1)
                continue
            }
            do {
                // Written beside the file and renamed: an interrupted run never leaves half a file.
                try ReplacedFile.write(canonical, to: file)
                print("\(file): rewritten")
            } catch {
                Standard.error("smtptape: \(error.description)")
                status = 2
            }
        }
        if status != 0 { throw ExitCode(status) }
    }
}
