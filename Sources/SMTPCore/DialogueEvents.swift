/// One side of an SMTP connection.
public enum Side: Sendable, Hashable {
    case client, server

    public var name: String { self == .client ? "client" : "server" }
}

/// How TLS began on a connection.
public enum TLSMode: Sendable, Hashable {
    /// RFC 3207: after `C: STARTTLS` / `S: 220 ...`.
    case startTLS
    /// SMTPS (RFC 8314): TLS from the first byte, usually on port 465.
    case implicit

    public var name: String { self == .startTLS ? "starttls" : "implicit" }
}

/// What became of the bytes after TLS began.
public enum TLSState: Sendable, Hashable {
    /// TLS records followed and could not be read: they are counted, not parsed.
    case encrypted
    /// The server accepted STARTTLS but no TLS record followed (a capture behind a decrypting
    /// tap, or a client that never started TLS): the dialogue goes on in the clear.
    case plaintext
    /// The bytes after TLS began are given decrypted (a key log, a proxy, a scenario).
    /// `version` and `cipherSuite` are IANA names when known (`TLS 1.3`, `TLS_AES_256_GCM_SHA384`).
    case decrypted(version: String?, cipherSuite: String?)

    public var name: String {
        switch self {
        case .encrypted: "encrypted"
        case .plaintext: "plaintext"
        case .decrypted: "decrypted"
        }
    }
}

/// The point where TLS began, and what followed.
public struct TLSStart: Sendable, Hashable {
    public var mode: TLSMode
    public var state: TLSState

    public init(mode: TLSMode, state: TLSState) {
        self.mode = mode
        self.state = state
    }
}

/// How a message travelled: DATA (dot-stuffed, RFC 5321) or BDAT chunks (RFC 3030).
public enum MessageTransfer: Sendable, Hashable {
    case data, bdat

    public var name: String { self == .data ? "DATA" : "BDAT" }
}

/// Ways in which a line breaks the rules. Such lines are kept byte for byte and flagged.
public struct LineFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    /// Ends in LF without CR.
    public static let bareLF = LineFlags(rawValue: 1 << 0)
    /// Longer than the RFC 5321 limit for its kind of line (see ``SMTPLimits``).
    public static let overLength = LineFlags(rawValue: 1 << 1)
    /// The stream ended (or a gap or the length cap came) before the line's LF.
    public static let unterminated = LineFlags(rawValue: 1 << 2)
    /// A reply code followed by neither space nor hyphen: `250OK`.
    public static let missingSeparator = LineFlags(rawValue: 1 << 3)
    /// A server line that does not start with a reply code.
    public static let notAReply = LineFlags(rawValue: 1 << 4)
    /// A reply with no command waiting for it.
    public static let unsolicited = LineFlags(rawValue: 1 << 5)
    /// A command whose argument does not parse (e.g. `BDAT -1`).
    public static let malformed = LineFlags(rawValue: 1 << 6)
    /// The lines of one multi-line reply carry different codes.
    public static let mixedCodes = LineFlags(rawValue: 1 << 7)
    /// Not a rule broken but who spoke: a reply a recording proxy sent in the server's place
    /// (`reply-by: proxy` in a scenario).
    public static let byProxy = LineFlags(rawValue: 1 << 8)

    /// Names for JSON and transcripts, in a fixed order.
    public var names: [String] {
        var names: [String] = []
        if contains(.bareLF) { names.append("bare_lf") }
        if contains(.overLength) { names.append("over_length") }
        if contains(.unterminated) { names.append("unterminated") }
        if contains(.missingSeparator) { names.append("no_space_after_code") }
        if contains(.notAReply) { names.append("not_a_reply") }
        if contains(.unsolicited) { names.append("unsolicited") }
        if contains(.malformed) { names.append("malformed") }
        if contains(.mixedCodes) { names.append("mixed_codes") }
        if contains(.byProxy) { names.append("by_proxy") }
        return names
    }
}

/// What a reply answers.
public enum ReplyContext: Sendable, Hashable {
    /// The opening `220` (or `421`/`554`) of the session.
    case greeting
    case command(SMTPVerb)
    /// The reply after the message content of DATA (`250 queued as ...`).
    case message
    /// A reply during an AUTH exchange after a client response.
    case authResponse
    /// A command the capture does not hold (it fell into a gap).
    case lostCommand
    /// No command was waiting: an unsolicited reply (`421 timeout`), or the capture began mid-session.
    case none

    /// The label in JSON `answers`: the verb, `greeting`, `message`, `auth`, `unknown` (a command
    /// the capture lost), or empty for none.
    public var label: String {
        switch self {
        case .greeting: "greeting"
        case .command(let verb): verb.name
        case .message: "message"
        case .authResponse: "auth"
        case .lostCommand: "unknown"
        case .none: ""
        }
    }
}

/// Receives what ``SMTPDialogue`` finds in the byte streams.
///
/// `raw` buffers are only valid during the call. Each byte of each direction is passed in exactly
/// one `raw` (up to encrypted TLS), so concatenating them gives back the stream. An observer must
/// never feed bytes back into the dialogue that called it.
public protocol SMTPDialogueObserver: AnyObject {
    /// A client command line. `secret` is the byte range (within `raw`) of AUTH credentials.
    func command(_ raw: UnsafeRawBufferPointer, verb: SMTPVerb, flags: LineFlags, secret: Range<Int>?, time: Timestamp)
    /// A complete reply of `lineCount` lines.
    func reply(_ raw: UnsafeRawBufferPointer, lineCount: Int, code: Int?, context: ReplyContext, flags: LineFlags, time: Timestamp)
    /// A client response line within an AUTH exchange; `secret` is its range within `raw`.
    func authResponse(_ raw: UnsafeRawBufferPointer, secret: Range<Int>?, flags: LineFlags, time: Timestamp)
    /// Message `message` (1-based within the session) begins. `bytesMissingBefore` says the capture
    /// lost its first bytes (the data before the first that follows is unknown).
    func messageBegan(message: Int, transfer: MessageTransfer, bytesMissingBefore: Bool, time: Timestamp)
    /// Bytes of message `message` (1-based within the session) as sent on the wire.
    /// For DATA they are dot-stuffed; `atLineStart` tells whether `raw` begins a line.
    func messageData(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, atLineStart: Bool, time: Timestamp)
    /// The end of a message: `raw` is the `.` line for DATA and empty for BDAT. `complete` is
    /// `false` when bytes of the message are missing (a gap) or the stream ended inside it.
    func messageEnd(_ raw: UnsafeRawBufferPointer, message: Int, transfer: MessageTransfer, size: Int, complete: Bool, time: Timestamp)
    /// Bytes that cannot be read as a line: the tail of a line cut by a gap, up to the next LF.
    /// `secret` says it may hold credentials (the gap may have swallowed an AUTH command or
    /// challenge): outputs redact it as they redact AUTH responses.
    func fragment(_ raw: UnsafeRawBufferPointer, side: Side, secret: Bool, time: Timestamp)
    /// `bytes` bytes of `side` are missing from the capture.
    func gap(side: Side, bytes: Int, time: Timestamp)
    /// TLS began; `start.state` says whether what follows is readable.
    func tlsStarted(_ start: TLSStart, time: Timestamp)
    /// Encrypted bytes, counted and not parsed.
    func encrypted(side: Side, bytes: Int, time: Timestamp)
    /// TLS records of one side (both when `nil`) could not be decrypted from here on, and why
    /// (no key for the session, an unsupported suite, a record that fails authentication, a gap).
    func tlsUndecryptable(side: Side?, reason: String, time: Timestamp)
}

extension SMTPDialogueObserver {
    public func messageBegan(message: Int, transfer: MessageTransfer, bytesMissingBefore: Bool, time: Timestamp) {}
    public func tlsUndecryptable(side: Side?, reason: String, time: Timestamp) {}
}

/// A reverse-path (MAIL) or forward-path (RCPT) and the reply it got.
public struct EnvelopeAddress: Sendable, Hashable {
    /// The mailbox, without angle brackets.
    public var address: ByteString
    /// Whether the path was written in angle brackets (RFC 5321 requires them).
    public var bracketed: Bool
    public var replyCode: Int?

    public init(address: ByteString, bracketed: Bool = true, replyCode: Int? = nil) {
        self.address = address
        self.bracketed = bracketed
        self.replyCode = replyCode
    }

    /// The path as the client wrote it: `<a@b>`, or the bare text when it had no brackets.
    public var asSent: [UInt8] { bracketed ? [0x3C] + address.bytes + [0x3E] : address.bytes }
}

/// What one session did, gathered while its dialogue is read.
public struct SessionSummary: Sendable, Hashable {
    /// The reverse-path of each MAIL command, in order, with its reply code.
    public var senders: [EnvelopeAddress] = []
    public var recipients: [EnvelopeAddress] = []
    public var completedMessages = 0
    public var messageBytes = 0
    /// The reply code that ended each message (`250` queued, `554` rejected, ...).
    public var messageReplyCodes: [Int] = []
    public var lastReplyCode: Int?
    public var quitSent = false
    /// The AUTH mechanism, upper-cased; ``Secrets/placeholder`` when the line did not name a
    /// mechanism a SASL name can be (it may hold a credential).
    public var authMechanism: String?
    /// The reply that ended the AUTH exchange (`235`, `535`, ...).
    public var authReplyCode: Int?
    public var tls: TLSMode?
    public var tlsState: TLSState?
    public var encryptedBytes: (client: Int, server: Int) { (encryptedClient, encryptedServer) }
    public var encryptedClient = 0
    public var encryptedServer = 0
    public var gapBytes = 0

    public init() {}
}
