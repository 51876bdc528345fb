/// The service extensions a server announces in its EHLO reply (RFC 5321 4.1.1.1).
///
/// The first line of the reply is the greeting (`250-mail.example.com Hello`); each further line
/// is a keyword with optional parameters: `PIPELINING`, `SIZE 10240000`, `AUTH PLAIN LOGIN`,
/// `STARTTLS`, `CHUNKING`, `SMTPUTF8`, `ENHANCEDSTATUSCODES`, `8BITMIME`.
public struct EHLOCapabilities: Hashable, Sendable {
    public struct Capability: Hashable, Sendable {
        /// The keyword, upper-cased.
        public var keyword: String
        public var parameters: [String]
        public init(keyword: String, parameters: [String] = []) {
            self.keyword = keyword
            self.parameters = parameters
        }
    }

    /// The server's name and greeting text from the first line.
    public var greeting: ByteString
    public var capabilities: [Capability]

    public init(greeting: ByteString, capabilities: [Capability]) {
        self.greeting = greeting
        self.capabilities = capabilities
    }

    /// Reads the capabilities of a positive (250) EHLO reply; `nil` for any other reply.
    public init?(reply: SMTPReply) {
        guard reply.code == 250, let first = reply.lines.first else { return nil }
        greeting = first.text
        capabilities = reply.lines.dropFirst().compactMap { line in
            let words = String(decoding: line.text.bytes, as: UTF8.self).split(separator: " ").map(String.init)
            guard let keyword = words.first else { return nil }
            return Capability(keyword: keyword.uppercased(), parameters: Array(words.dropFirst()))
        }
    }

    public func contains(_ keyword: String) -> Bool {
        capabilities.contains { $0.keyword == keyword.uppercased() }
    }

    public subscript(keyword: String) -> Capability? {
        capabilities.first { $0.keyword == keyword.uppercased() }
    }

    /// The SIZE limit (RFC 1870), if announced with a value.
    public var sizeLimit: Int? { self["SIZE"]?.parameters.first.flatMap { Int($0) } }

    /// The AUTH mechanisms (RFC 4954), upper-cased.
    public var authMechanisms: [String] { self["AUTH"]?.parameters.map { $0.uppercased() } ?? [] }

    /// The reply a server would send, given its greeting line text.
    public var reply: SMTPReply {
        let texts = [greeting] + capabilities.map { ByteString(([$0.keyword] + $0.parameters).joined(separator: " ")) }
        return SMTPReply(lines: texts.enumerated().map { index, text in
            SMTPReplyLine(code: 250, isContinuation: index < texts.count - 1, text: text)
        })
    }
}
