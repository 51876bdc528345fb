import SMTPCore

/// A TCP connection and, once it is known to carry SMTP, its dialogue.
struct Connection {
    enum Kind {
        /// Neither port is an SMTP port; the first payload decides.
        case undetermined
        case smtp
        /// Not SMTP: packets are skipped until the connection ends.
        case ignored
    }

    var key: FlowKey
    var kind: Kind
    /// Whether the key's first endpoint is the client; `nil` until known.
    var clientIsA: Bool?
    var streamA = TCPStream()
    var streamB = TCPStream()
    var dialogue = SessionReader()
    var session: SessionInfo?
    /// The session's id (0 before it starts), read on every packet without copying ``session``.
    var sessionID = 0
    var start: Timestamp
    var lastSeen: Timestamp
    var handshakeSeen: Bool
    /// The client's initial sequence number, to tell a new connection on the same ports.
    var clientISN: UInt32?
    var finA = false, finB = false
    /// The side that sent the first FIN: the one that closed the connection.
    var firstFIN: Side?
    /// Whether the slot holds a connection in the flow table (slots are reused).
    var live = false
    /// Set when the connection was closed or reset: it lingers briefly for packets the capture
    /// stored late, then ends with this reason.
    var closing: SessionEndReason?
    var closedAt = Timestamp(nanoseconds: 0)
    /// The handshake's round trip, when it was seen: SYN to SYN-ACK (captured near the client) or
    /// SYN-ACK to ACK (near the server), whichever is longer.
    var synTime: Timestamp?
    var synAckTime: Timestamp?
    var roundTrip: Int64?

    /// Notes the handshake's packets to measure its round trip.
    mutating func observeHandshake(_ segment: TCPSegment, time: Timestamp) {
        if segment.isSYN, !segment.hasACK {
            synTime = time
        } else if segment.isSYN {
            synAckTime = time
        } else if let synAck = synAckTime, roundTrip == nil, segment.hasACK {
            let first = synTime.map { synAck.nanoseconds - $0.nanoseconds } ?? 0
            roundTrip = max(first, time.nanoseconds - synAck.nanoseconds)
        }
    }
    /// Tells this connection from a later one in the same slot.
    var generation = 0

    init(key: FlowKey, first segment: TCPSegment, time: Timestamp, smtpPorts: borrowing PortSet) {
        self.key = key
        start = time
        lastSeen = time
        handshakeSeen = segment.isSYN
        if segment.isSYN {
            clientIsA = segment.hasACK ? !segment.forward : segment.forward
            if !segment.hasACK { clientISN = segment.sequence }
        }
        let smtpA = smtpPorts.contains(key.portA), smtpB = smtpPorts.contains(key.portB)
        if clientIsA == nil {
            if smtpB && !smtpA { clientIsA = true } else if smtpA && !smtpB { clientIsA = false }
        }
        kind = smtpA || smtpB ? .smtp : .undetermined
    }

    /// Whether a SYN on this key starts a new connection rather than repeating the old one's.
    func isReplaced(by segment: TCPSegment) -> Bool {
        guard segment.isSYN, !segment.hasACK else { return false }
        if closing != nil { return true }
        if let clientISN { return clientISN != segment.sequence }
        return true
    }

    @inline(__always)
    func side(forward: Bool) -> Side { forward == (clientIsA ?? true) ? .client : .server }

    /// Decides, at the first payload, whether an undetermined connection is SMTP and who is the
    /// server: the side that speaks first with a reply code.
    mutating func classify(_ segment: TCPSegment) {
        let startsWithReply = Self.startsWithReplyCode(segment.payload)
        if kind == .undetermined {
            guard startsWithReply, Self.startsWith220(segment.payload), !Self.mentionsFTP(segment.payload) else {
                kind = .ignored
                return
            }
            kind = .smtp
            clientIsA = !segment.forward
        } else if clientIsA == nil {
            clientIsA = startsWithReply ? !segment.forward : segment.forward
        }
    }

    static func startsWithReplyCode(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && SMTPReplyLine.beginsReply(bytes)
    }

    /// FTP servers greet with 220 too (`220 ProFTPD Server`, `220 (vsFTPd 3.0.3)`); on a port that
    /// is not SMTP's, a greeting line that says FTP is taken for FTP.
    static func mentionsFTP(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var index = 0
        while index + 2 < bytes.count, bytes[index] != 0x0A {
            if bytes[index] | 0x20 == 0x66, bytes[index + 1] | 0x20 == 0x74, bytes[index + 2] | 0x20 == 0x70 { return true }
            index += 1
        }
        return false
    }

    static func startsWith220(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 4 && bytes[0] == 0x32 && bytes[1] == 0x32 && bytes[2] == 0x30
    }

    /// Passes one segment to the stream of its direction and lets the other stream learn from its ACK.
    @inline(__always)
    mutating func receive(_ segment: TCPSegment, time: Timestamp, observer: some SMTPDialogueObserver) {
        if segment.isFIN, firstFIN == nil { firstFIN = side(forward: segment.forward) }
        // The acknowledgement says what the other side sent before this segment: deliver that
        // first, or replies and commands would reach the dialogue out of order.
        // (Most segments acknowledge exactly what the other side sent: nothing to do then.)
        if segment.forward {
            if segment.hasACK, streamB.isWaiting || (segment.payloadLength > 0 && segment.acknowledgement != streamB.nextSequence) {
                streamB.peerAcknowledged(segment.acknowledgement, answering: segment.payloadLength > 0, time: time, dialogue: &dialogue, observer: observer)
            }
            streamA.receive(segment, time: time, dialogue: &dialogue, observer: observer)
        } else {
            if segment.hasACK, streamA.isWaiting || (segment.payloadLength > 0 && segment.acknowledgement != streamA.nextSequence) {
                streamA.peerAcknowledged(segment.acknowledgement, answering: segment.payloadLength > 0, time: time, dialogue: &dialogue, observer: observer)
            }
            streamB.receive(segment, time: time, dialogue: &dialogue, observer: observer)
        }
    }

    var isClosed: Bool { streamA.finished && streamB.finished }

    /// Delivers what is left and ends the dialogue.
    mutating func finish(time: Timestamp, observer: some SMTPDialogueObserver) {
        streamA.flush(time: time, dialogue: &dialogue, observer: observer)
        streamB.flush(time: time, dialogue: &dialogue, observer: observer)
        dialogue.finish(time: time, observer: observer)
    }
}

/// The TCP ports taken as SMTP: 25, 465, 587, 2525 and any added with `--port`.
struct PortSet {
    private var bits = [UInt64](repeating: 0, count: 1024)

    init(_ ports: [UInt16]) {
        for port in [25, 465, 587, 2525] + ports.map(Int.init) {
            bits[port >> 6] |= 1 << UInt64(port & 63)
        }
    }

    @inline(__always)
    func contains(_ port: UInt16) -> Bool { bits[Int(port) >> 6] & (1 << UInt64(port & 63)) != 0 }
}
