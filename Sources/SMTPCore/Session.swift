/// Who talked to whom, and where the dialogue came from.
public struct SessionInfo: Sendable, Hashable {
    /// Unique within one run; sessions are numbered across all inputs, in order.
    public var id: Int
    /// `ADDR:PORT`, IPv6 as `[ADDR]:PORT`.
    public var client: String
    public var server: String
    /// When the connection began (its SYN, or the first packet seen).
    public var start: Timestamp
    /// The capture file (as named by the user), or another description of the source.
    public var source: String
    /// Whether the TCP handshake was seen; if not, the session began before the capture did.
    public var handshakeSeen: Bool
    /// For a session without addresses or a known start (a scenario written by hand): what to
    /// call it instead.
    public var name: String?

    public init(id: Int, client: String, server: String, start: Timestamp, source: String, handshakeSeen: Bool, name: String? = nil) {
        self.id = id
        self.client = client
        self.server = server
        self.start = start
        self.source = source
        self.handshakeSeen = handshakeSeen
        self.name = name
    }
}

/// Why a session ended.
public enum SessionEndReason: Sendable, Hashable {
    /// Both sides closed the connection (FIN); `by` sent its FIN first.
    case closed(by: Side)
    /// One side aborted the connection (RST).
    case reset(by: Side)
    /// The capture ended while the connection was open.
    case captureEnded
    /// Nothing was seen on the connection for a long time.
    case idle
    /// The capture file is damaged after this point.
    case fileDamaged
    /// A new connection began on the same addresses and ports before this one was seen to close.
    case replaced

    public var name: StaticString {
        switch self {
        case .closed(.client): "closed_by_client"
        case .closed(.server): "closed_by_server"
        case .reset(.client): "reset_by_client"
        case .reset(.server): "reset_by_server"
        case .captureEnded: "capture_ended"
        case .idle: "idle_timeout"
        case .fileDamaged: "file_damaged"
        case .replaced: "replaced"
        }
    }

    /// Words for people.
    public var phrase: StaticString {
        switch self {
        case .closed(.client): "connection closed by the client"
        case .closed(.server): "connection closed by the server"
        case .reset(.client): "connection reset by the client"
        case .reset(.server): "connection reset by the server"
        case .captureEnded: "capture ended with the connection open"
        case .idle: "connection idle, flushed"
        case .fileDamaged: "capture file damaged, session cut short"
        case .replaced: "a new connection on the same addresses and ports began"
        }
    }

    /// The side that ended the connection, when one did.
    public var endedBy: Side? {
        switch self {
        case .closed(let side), .reset(let side): side
        default: nil
        }
    }
}

/// Receives sessions and their dialogue events.
///
/// Before dialogue events of a session arrive, ``select(session:)`` names it; events then belong
/// to that session until the next `select`.
public protocol SessionObserver: SMTPDialogueObserver {
    func sessionStarted(_ info: SessionInfo)
    func select(session id: Int)
    func sessionEnded(_ info: SessionInfo, summary: SessionSummary, reason: SessionEndReason, time: Timestamp)
}
