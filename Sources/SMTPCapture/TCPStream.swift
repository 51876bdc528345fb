import SMTPCore

/// One direction of a TCP connection, reassembled into the byte stream the receiver saw.
///
/// Streaming: in-order bytes go straight from the packet buffer to the dialogue; only
/// out-of-order segments are copied, up to ``pendingCap`` bytes. Retransmissions and overlaps keep
/// the bytes that arrived first. A hole is declared a gap (and reported with its size) when the
/// peer acknowledges data beyond it, when too much waits behind it, or when the connection ends.
/// Sequence numbers wrap around: all comparisons are modulo 2^32.
struct TCPStream {
    struct PendingSegment {
        var sequence: UInt32
        var bytes: [UInt8]
        /// Bytes of the segment the snap length cut off.
        var missingTail: Int
        var wireLength: Int { bytes.count + missingTail }
    }

    /// The most out-of-order data kept per direction before the hole in front of it is declared
    /// lost, in bytes and in segments (segments cut by the snap length hold no bytes).
    static let pendingCap = 4 << 20
    static let pendingSegmentCap = 1 << 16

    var started = false
    var nextSequence: UInt32 = 0
    /// Out-of-order segments, a binary min-heap by sequence number (all within 2^31 of
    /// ``nextSequence``, so the modular order is a total order): inserting and taking the first
    /// are O(log n) however the segments arrive.
    var pending: [PendingSegment] = []
    var pendingBytes = 0
    var finSequence: UInt32?
    var finished = false
    var side = Side.client

    @inline(__always)
    static func distance(_ from: UInt32, _ to: UInt32) -> Int { Int(Int32(bitPattern: to &- from)) }

    /// Handles one segment of this direction.
    mutating func receive(_ segment: TCPSegment, time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
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

    var hasDelivered = false

    mutating func markFIN(_ sequence: UInt32) {
        if finSequence == nil { finSequence = sequence }
        if let fin = finSequence, Self.distance(nextSequence, fin) <= 0 { finished = true }
    }

    mutating func place(_ sequence: UInt32, payload: UnsafeRawBufferPointer, wireLength: Int, time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        let offset = Self.distance(nextSequence, sequence)
        if offset <= 0 {
            let skip = -offset
            guard skip < wireLength else { return }  // a retransmission of what we have
            deliver(payload, wireLength: wireLength, skip: skip, time: time, dialogue: &dialogue, observer: observer)
            if !pending.isEmpty { drain(time: time, dialogue: &dialogue, observer: observer) }
            return
        }
        // Out of order: keep a copy.
        pushPending(PendingSegment(sequence: sequence, bytes: Array(payload), missingTail: wireLength - payload.count))
        pendingBytes += payload.count
        while pendingBytes > Self.pendingCap || pending.count > Self.pendingSegmentCap, !pending.isEmpty {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
    }

    /// Passes on the bytes from `skip`, and reports what the snap length cut off as a gap.
    @inline(__always)
    mutating func deliver(_ payload: UnsafeRawBufferPointer, wireLength: Int, skip: Int, time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        let captured = payload.count
        if skip < captured {
            dialogue.receive(UnsafeRawBufferPointer(rebasing: payload[skip..<captured]), from: side, time: time, observer: observer)
        }
        let missing = wireLength - max(skip, captured)
        if missing > 0 {
            dialogue.receiveGap(missing, from: side, time: time, observer: observer)
        }
        hasDelivered = true
        nextSequence = nextSequence &+ UInt32(truncatingIfNeeded: wireLength - skip)
        if let fin = finSequence, Self.distance(nextSequence, fin) <= 0 { finished = true }
    }

    /// Delivers the waiting segments that have become in order.
    mutating func drain(time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        while let first = pending.first {
            let offset = Self.distance(nextSequence, first.sequence)
            if offset > 0 { break }
            popPending()
            pendingBytes -= first.bytes.count
            guard -offset < first.wireLength else { continue }
            first.bytes.withUnsafeBytes {
                deliver($0, wireLength: first.wireLength, skip: -offset, time: time, dialogue: &dialogue, observer: observer)
            }
        }
    }

    @inline(__always)
    static func precedes(_ a: PendingSegment, _ b: PendingSegment) -> Bool { distance(a.sequence, b.sequence) > 0 }

    mutating func pushPending(_ segment: PendingSegment) {
        pending.append(segment)
        var child = pending.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard Self.precedes(pending[child], pending[parent]) else { break }
            pending.swapAt(child, parent)
            child = parent
        }
    }

    mutating func popPending() {
        let last = pending.removeLast()
        guard !pending.isEmpty else { return }
        pending[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var first = parent
            if left < pending.count, Self.precedes(pending[left], pending[first]) { first = left }
            if right < pending.count, Self.precedes(pending[right], pending[first]) { first = right }
            if first == parent { break }
            pending.swapAt(parent, first)
            parent = first
        }
    }

    /// Declares the hole before the first waiting segment lost, and goes on from there.
    mutating func skipToPending(time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        guard let first = pending.first else { return }
        let hole = Self.distance(nextSequence, first.sequence)
        if hole > 0 {
            dialogue.receiveGap(hole, from: side, time: time, observer: observer)
            nextSequence = first.sequence
        }
        drain(time: time, dialogue: &dialogue, observer: observer)
    }

    /// The peer acknowledged `acknowledgement`: a hole it covers was received but not captured.
    @inline(__always)
    mutating func peerAcknowledged(_ acknowledgement: UInt32, time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        while let first = pending.first, Self.distance(first.sequence, acknowledgement) > 0 {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
    }

    /// The connection is over: everything waiting is delivered, holes reported as gaps.
    mutating func flush(time: Timestamp, dialogue: inout SMTPDialogue, observer: some SMTPDialogueObserver) {
        while !pending.isEmpty {
            skipToPending(time: time, dialogue: &dialogue, observer: observer)
        }
        if let fin = finSequence, started {
            let missing = Self.distance(nextSequence, fin)
            if missing > 0 {
                dialogue.receiveGap(missing, from: side, time: time, observer: observer)
                nextSequence = fin
            }
        }
    }
}
