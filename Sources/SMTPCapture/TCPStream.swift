import HeapModule
import SMTPCore

/// One direction of a TCP connection, reassembled into the byte stream the receiver saw.
///
/// Streaming: in-order bytes go straight from the packet buffer to the dialogue; only
/// out-of-order segments are copied, up to ``pendingCap`` bytes. Where segments overlap, the bytes
/// that arrived first win, whether they arrived in order or not (a retransmission never changes
/// bytes already seen). A hole is declared a gap (and reported with its size) when the peer
/// acknowledges data beyond it, when too much waits behind it, or when the connection ends.
/// Sequence numbers wrap around: positions are kept as 64-bit offsets into the stream.
struct TCPStream {
    /// Out-of-order bytes waiting for the hole before them, or the part of a segment the snap
    /// length cut off (`bytes` empty, `missing` its length), which any real bytes outrank.
    struct Segment: Comparable {
        var offset: Int64
        /// Order of arrival: lower arrived earlier.
        var arrival: Int
        var bytes: [UInt8]
        var missing: Int

        var end: Int64 { offset + Int64(bytes.count + missing) }

        static func < (lhs: Segment, rhs: Segment) -> Bool { (lhs.offset, lhs.arrival) < (rhs.offset, rhs.arrival) }
        static func == (lhs: Segment, rhs: Segment) -> Bool { lhs.offset == rhs.offset && lhs.arrival == rhs.arrival }
    }

    /// Segments that cover the current position, earliest arrival first.
    struct ByArrival: Comparable {
        var segment: Segment
        static func < (lhs: ByArrival, rhs: ByArrival) -> Bool { lhs.segment.arrival < rhs.segment.arrival }
        static func == (lhs: ByArrival, rhs: ByArrival) -> Bool { lhs.segment.arrival == rhs.segment.arrival }
    }

    /// The most out-of-order data kept per direction before the hole in front of it is declared
    /// lost, in bytes and in segments (segments cut by the snap length hold no bytes).
    static let pendingCap = 4 << 20
    static let pendingSegmentCap = 1 << 16
    /// Arrival order of bytes the snap length cut off: after every real byte.
    static let missingArrival = Int.max / 2

    var started = false
    var nextSequence: UInt32 = 0
    /// The stream offset of ``nextSequence``: how many bytes (and gap bytes) were delivered.
    var delivered: Int64 = 0
    var pending = Heap<Segment>()
    var pendingBytes = 0
    var arrivals = 0
    var finSequence: UInt32?
    var finished = false
    var side = Side.client
    var hasDelivered = false

    var isWaiting: Bool { !pending.isEmpty }

    @inline(__always)
    static func distance(_ from: UInt32, _ to: UInt32) -> Int { Int(Int32(bitPattern: to &- from)) }

    /// Handles one segment of this direction.
    mutating func receive(_ segment: TCPSegment, time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        var sequence = segment.sequence
        if segment.isSYN {
            if !started || !hasDelivered {
                nextSequence = sequence &+ 1
                started = true
            }
            sequence = sequence &+ 1
        }
        if !started {
            guard segment.payloadLength > 0 else {
                if segment.isFIN { started = true; nextSequence = sequence; markFIN(sequence) }
                return
            }
            started = true
            nextSequence = sequence
        }
        if segment.payloadLength > 0 {
            place(sequence, payload: segment.payload, wireLength: segment.payloadLength, time: time, dialogue: &dialogue, observer: observer)
        }
        if segment.isFIN {
            markFIN(sequence &+ UInt32(truncatingIfNeeded: segment.payloadLength))
        }
    }

    mutating func markFIN(_ sequence: UInt32) {
        if finSequence == nil { finSequence = sequence }
        if let fin = finSequence, Self.distance(nextSequence, fin) <= 0 { finished = true }
    }

    mutating func place(_ sequence: UInt32, payload: UnsafeRawBufferPointer, wireLength: Int, time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        let relative = Self.distance(nextSequence, sequence)
        arrivals += 1
        if relative <= 0 {
            let skip = -relative
            guard skip < wireLength else { return }  // a retransmission of what we have
            guard !pending.isEmpty, let first = pending.min else {
                // The common case: in order, nothing waiting. Straight from the packet.
                deliver(payload, wireLength: wireLength, from: skip, to: wireLength, time: time, dialogue: &dialogue, observer: observer)
                return
            }
            // Bytes that arrived earlier, out of order, win where this segment overlaps them.
            let cut = skip + min(wireLength - skip, Int(first.offset - delivered))
            deliver(payload, wireLength: wireLength, from: skip, to: cut, time: time, dialogue: &dialogue, observer: observer)
            if cut < wireLength {
                keep(payload, wireLength: wireLength, from: cut, at: delivered)
            }
            drain(time: time, dialogue: &dialogue, observer: observer)
            return
        }
        keep(payload, wireLength: wireLength, from: 0, at: delivered + Int64(relative))
        while pendingBytes > Self.pendingCap || pending.count > Self.pendingSegmentCap, !pending.isEmpty {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
    }

    /// Copies the part of a segment from `from` for later, at stream offset `offset`.
    mutating func keep(_ payload: UnsafeRawBufferPointer, wireLength: Int, from: Int, at offset: Int64) {
        let captured = payload.count
        if from < captured {
            pending.insert(Segment(offset: offset, arrival: arrivals, bytes: Array(payload[from..<captured]), missing: 0))
            pendingBytes += captured - from
        }
        let missingStart = max(from, captured)
        if missingStart < wireLength {
            pending.insert(Segment(offset: offset + Int64(missingStart - from), arrival: Self.missingArrival + arrivals,
                                   bytes: [], missing: wireLength - missingStart))
        }
    }

    /// Passes on the bytes `from..<to` of a segment; what the snap length cut off is a gap.
    @inline(__always)
    mutating func deliver(_ payload: UnsafeRawBufferPointer, wireLength: Int, from: Int, to: Int, time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        guard to > from else { return }
        let captured = min(payload.count, to)
        if from < captured {
            dialogue.receive(UnsafeRawBufferPointer(rebasing: payload[from..<captured]), from: side, time: time, observer: observer)
        }
        let missing = to - max(from, captured)
        if missing > 0 {
            dialogue.receiveGap(missing, from: side, time: time, observer: observer)
        }
        advance(by: to - from)
    }

    @inline(__always)
    mutating func advance(by count: Int) {
        hasDelivered = true
        delivered += Int64(count)
        nextSequence = nextSequence &+ UInt32(truncatingIfNeeded: count)
        if let fin = finSequence, Self.distance(nextSequence, fin) <= 0 { finished = true }
    }

    /// Delivers waiting bytes that have become in order: at each position, those of the segment
    /// that arrived first among the ones covering it.
    mutating func drain(time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        // Segments that cover the position, popped from `pending`; empty again when this returns.
        var covering = Heap<ByArrival>()
        while true {
            while let top = pending.min, top.offset <= delivered {
                let segment = pending.removeMin()
                if segment.end > delivered {
                    covering.insert(ByArrival(segment: segment))
                } else {
                    pendingBytes -= segment.bytes.count
                }
            }
            while let stale = covering.min, stale.segment.end <= delivered {
                pendingBytes -= covering.removeMin().segment.bytes.count
            }
            guard let chosen = covering.min?.segment else { return }
            var limit = chosen.end
            if let next = pending.min, next.offset < limit { limit = next.offset }
            let from = Int(delivered - chosen.offset), to = Int(limit - chosen.offset)
            if chosen.bytes.isEmpty {
                dialogue.receiveGap(to - from, from: side, time: time, observer: observer)
                advance(by: to - from)
            } else {
                chosen.bytes.withUnsafeBytes {
                    deliver($0, wireLength: chosen.bytes.count, from: from, to: to, time: time, dialogue: &dialogue, observer: observer)
                }
            }
        }
    }

    /// Declares the hole before the first waiting segment lost, and goes on from there.
    mutating func skipToPending(time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        guard let first = pending.min else { return }
        let hole = Int(first.offset - delivered)
        if hole > 0 {
            dialogue.receiveGap(hole, from: side, time: time, observer: observer)
            advance(by: hole)
        }
        drain(time: time, dialogue: &dialogue, observer: observer)
    }

    /// The peer acknowledged `acknowledgement`: a hole it covers was received but not captured.
    ///
    /// With out-of-order bytes waiting, the hole before them is declared at once. With none, only
    /// a peer that sends data of its own (`answering`: it has read and acted on the bytes) declares
    /// the hole: a bare ACK may be stored before the data it acknowledges by a capture made on
    /// several CPUs, and that data must not then be thrown away as a retransmission.
    @inline(never)
    mutating func peerAcknowledged(_ acknowledgement: UInt32, answering: Bool, time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        guard started, hasDelivered || isWaiting else { return }
        let ahead = Self.distance(nextSequence, acknowledgement)
        let acknowledged = delivered + Int64(ahead)
        while let first = pending.min, first.offset < acknowledged {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
        // The peer's ACK covers a FIN too: one more than the data when the FIN came.
        var missing = Self.distance(nextSequence, acknowledgement)
        if let fin = finSequence, Self.distance(fin, acknowledgement) >= 1 { missing -= 1 }
        if answering, pending.isEmpty, missing > 1, missing < 1 << 24 {
            dialogue.receiveGap(missing, from: side, time: time, observer: observer)
            advance(by: missing)
        }
    }

    /// The connection is over: everything waiting is delivered, holes reported as gaps.
    mutating func flush(time: Timestamp, dialogue: inout SessionReader, observer: some SMTPDialogueObserver) {
        while !pending.isEmpty {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
        if let fin = finSequence, started {
            let missing = Self.distance(nextSequence, fin)
            if missing > 0 {
                dialogue.receiveGap(missing, from: side, time: time, observer: observer)
                advance(by: missing)
            }
        }
    }
}
