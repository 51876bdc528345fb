import SMTPFiles

extension Scenario {
    /// A message kept in a file beside its scenario (`message-file: NAME`): the name the scenario
    /// gives it, and the bytes to write there.
    public struct MessageFile: Hashable, Sendable {
        /// A plain file name (``OutputFolder/isSafeName(_:)``), `BASENAME-s1-step7.eml`.
        public var name: String
        /// The message content, dot-unstuffed: the file's exact bytes.
        public var content: [UInt8]

        public init(name: String, content: [UInt8]) {
            self.name = name
            self.content = content
        }
    }

    /// Messages over this many bytes (1 MiB) are kept beside the scenario by `extract` and the
    /// recording proxy: a scenario file holds at most ``sizeLimit`` bytes.
    public static let largeMessageThreshold = 1 << 20

    /// Decides which messages are kept beside the scenario, and names their files: the one rule
    /// `extract` and the recording proxy share.
    ///
    /// A message over `threshold` bytes gets a ``Message/file`` named
    /// `BASENAME-sSESSION-stepSTEP.eml` (both 1-based; `baseName` made safe as
    /// ``OutputFolder/safeName(_:)`` does), and so does the next largest while the messages
    /// left inline would still make the file larger than ``sizeLimit``. Every other message is
    /// written inline (its `file` cleared), so the scenario returned names exactly the files
    /// returned.
    ///
    /// - Parameters:
    ///   - baseName: the scenario file's name without `.yaml` (`mail-session-3`).
    ///   - threshold: the largest message written inline, in bytes.
    /// - Returns: the scenario to write, and the files to write beside it (write them too: the
    ///   scenario writer writes only their names).
    public func placingLargeMessages(baseName: String, threshold: Int = Scenario.largeMessageThreshold) -> (scenario: Scenario, files: [MessageFile]) {
        placingLargeMessages(baseName: baseName, threshold: threshold, sizeLimit: Scenario.sizeLimit)
    }

    func placingLargeMessages(baseName: String, threshold: Int, sizeLimit: Int) -> (scenario: Scenario, files: [MessageFile]) {
        let base = OutputFolder.safeName(baseName)
        var placed = self
        var inline: [(session: Int, step: Int, cost: Int)] = []
        func place(session: Int, step: Int, inFile: Bool) {
            guard case .message(var message) = placed.sessions[session].steps[step].kind else { return }
            message.file = inFile ? "\(base)-s\(session + 1)-step\(step + 1).eml" : nil
            placed.sessions[session].steps[step].kind = .message(message)
        }
        for (session, steps) in sessions.map(\.steps).enumerated() {
            for (step, value) in steps.enumerated() {
                guard let message = value.message else { continue }
                let large = message.content.count > threshold
                place(session: session, step: step, inFile: large)
                if !large { inline.append((session, step, Self.inlineCost(message.content))) }
            }
        }
        // Messages under the threshold can still add up to more than a scenario file may hold.
        // Writing the file to measure it costs time: only when the messages could be too much.
        if inline.reduce(0, { $0 + $1.cost }) > sizeLimit / 4 {
            inline.sort { ($0.cost, $1.session, $1.step) > ($1.cost, $0.session, $0.step) }
            var size = ScenarioWriter.yaml(placed).utf8.count
            while size > sizeLimit, !inline.isEmpty {
                var estimate = size
                while estimate > sizeLimit, !inline.isEmpty {
                    let next = inline.removeFirst()
                    place(session: next.session, step: next.step, inFile: true)
                    estimate -= next.cost
                }
                size = ScenarioWriter.yaml(placed).utf8.count
            }
        }
        let files = placed.sessions.flatMap(\.steps).compactMap { step in
            step.message.flatMap { message in message.file.map { MessageFile(name: $0, content: message.content) } }
        }
        return (placed, files)
    }

    /// About how many bytes a message takes written inline: its text with each line indented,
    /// or its base64.
    static func inlineCost(_ content: [UInt8]) -> Int {
        guard TextForm.message(content) != nil else { return (content.count + 2) / 3 * 4 }
        return content.count + 6 * content.lazy.filter { $0 == 0x0A }.count
    }
}
