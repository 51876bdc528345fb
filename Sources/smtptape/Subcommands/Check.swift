import ArgumentParser
import SMTPScenario

struct Check: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check scenario files and report each problem as file:line:column: message.",
        discussion: """
            Problems go to standard error, one per line, as file:line:column: message. Exit status \
            0 when every file is a valid scenario, 1 when problems were found, 2 when a file could \
            not be read as a scenario at all (missing, over the 16 MiB limit, not text).

            Example:
              smtptape check Scenarios/*.yaml
            """
    )

    @Argument(help: ArgumentHelp("Scenario files.", valueName: "scenario"))
    var files: [String]

    func validate() throws {
        if files.isEmpty { throw ValidationError("Name at least one scenario file.") }
    }

    func run() throws {
        var status: Int32 = 0
        var problems = 0
        for file in files {
            let result = ScenarioReader.read(file: file)
            // Compiler style on standard error, so that editors and CI annotations pick them up.
            for diagnostic in result.diagnostics { Standard.error(diagnostic.description) }
            problems += result.diagnostics.count
            if result.unreadable { status = 2 } else if !result.diagnostics.isEmpty { status = max(status, 1) }
        }
        if problems > 0 {
            Standard.error("smtptape: \(problems) problem\(problems == 1 ? "" : "s") in \(files.count) file\(files.count == 1 ? "" : "s")")
        }
        if status != 0 { throw ExitCode(status) }
    }
}
