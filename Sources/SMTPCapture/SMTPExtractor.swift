import CPcap
import DequeModule
import SMTPCore
import SMTPFiles
import SMTPTLS


/// Settings for reading SMTP dialogues out of captures.
public struct ExtractionOptions: Sendable {
    /// Ports taken as SMTP besides 25, 465, 587 and 2525.
    public var extraPorts: [UInt16]
    /// A BPF filter (tcpdump syntax) applied before anything else.
    public var filter: String?
    /// A connection with no packet for this long (in capture time) is ended and reported.
    public var idleTimeout: Double
    /// TLS secrets (`--keylog`, and the secrets blocks of pcapng inputs): with them, sessions
    /// after STARTTLS and implicit-TLS sessions are decrypted and read like plaintext ones.
    public var keys: KeyLogStore?

    public init(extraPorts: [UInt16] = [], filter: String? = nil, idleTimeout: Double = 600, keys: KeyLogStore? = nil) {
        self.extraPorts = extraPorts
        self.filter = filter
        self.idleTimeout = idleTimeout
        self.keys = keys
    }
}

/// What reading one capture file found.
public struct FileReport: Sendable {
    public var file: String
    public var packets = 0
    public var tcpConnections = 0
    public var sessions = 0
    /// Packets whose headers cannot be right; skipped.
    public var corruptPackets = 0
    public var firstCorruption: (packet: Int, message: String)?
    /// Packets cut by the snap length before the end of their TCP header; skipped.
    public var truncatedHeaders = 0
    /// Packets whose link type smtptape does not decode.
    public var unsupportedLinkPackets = 0
    public var unsupportedLinkType: Int32?
    /// Set when the file could not be read to its end; what came before was still extracted.
    public var error: CaptureError?
    /// Packets a live capture lost because they were not read in time (the kernel dropped them).
    public var packetsDropped = 0
    /// Sessions and sides whose TLS could not be decrypted with the key log, and why.
    public var tlsFailures: [String] = []

    public init(file: String) { self.file = file }

    /// One-line warnings for standard error.
    public var warnings: [String] {
        var lines: [String] = []
        if let first = firstCorruption {
            lines.append("\(file): packet \(first.packet): \(first.message); \(corruptPackets) corrupt packet(s) skipped")
        }
        if truncatedHeaders > 0 {
            lines.append("\(file): \(truncatedHeaders) packet(s) cut by the snap length before the end of their TCP header, skipped")
        }
        if let type = unsupportedLinkType {
            lines.append("\(file): \(unsupportedLinkPackets) packet(s) with link type \(type), which smtptape does not decode, skipped")
        }
        for failure in tlsFailures { lines.append("\(file): \(failure)") }
        if packetsDropped > 0 {
            lines.append("\(file): \(packetsDropped) packet(s) dropped by the kernel before they could be read; sessions may have gaps")
        }
        if error == nil, sessions == 0 {
            lines.append("\(file): no SMTP sessions found (\(packets) packets, \(tcpConnections) TCP connections; ports 25, 465, 587, 2525 and --port are SMTP, and a 220 greeting on any port)")
        }
        return lines
    }
}

/// Progress through a capture file, for a terminal.
public struct ExtractionProgress: Sendable {
    public var file: String
    public var bytesRead: Int
    public var fileSize: Int
    public var packets: Int
}

/// Reads SMTP dialogues out of pcap and pcapng files and reports them to a ``SessionObserver``.
///
/// Streaming and bounded: each packet is decoded in place; connections hold only out-of-order
/// data and partial lines; connections are ended when closed, reset, or idle. Several files are
/// read in order with session numbers running on; connections do not span files.
public final class SMTPExtractor {
    let options: ExtractionOptions
    var state: FlowState
    public var progress: ((ExtractionProgress) -> Void)?

    /// The number the next session gets (settable, to run on from sessions read elsewhere).
    public var nextSessionID: Int {
        get { state.nextSessionID }
        set { state.nextSessionID = newValue }
    }


    public init(options: ExtractionOptions = ExtractionOptions(), observer: any SessionObserver) {
        self.options = options
        self.state = FlowState(options: options, observer: observer)
    }

    /// TLS secrets for the sessions that start from now on (see ``ExtractionOptions/keys``).
    public var keys: KeyLogStore? {
        get { state.keys }
        set { state.keys = newValue }
    }

    /// The number of sessions reported so far.
    public var sessionCount: Int { state.nextSessionID - 1 }

    /// Reads one capture file to its end (or to the point where it is damaged) and ends every
    /// connection still open. Returns what was found; a file that cannot be opened or is not a
    /// capture comes back with ``FileReport/error`` set and nothing read.
    public func read(file path: String) -> FileReport {
        do {
            return read(try InputSource(path: path))
        } catch {
            var report = FileReport(file: path == "-" ? "stdin" : path)
            report.error = CaptureError(kind: .cannotOpen, file: report.file, message: error.message)
            return report
        }
    }

    /// Reads a capture from an input opened once (a file or a pipe), from the reader's position.
    public func read(_ input: InputSource) -> FileReport {
        // The state moves out of the object for the length of the file: a local is checked for
        // exclusive access when compiled, a stored property at every packet when run.
        var local = state
        state = FlowState(options: options, observer: local.observer)
        defer { state = local }
        return Self.read(input, state: &local, progress: progress)
    }

    /// How an input is named in reports and sessions: its path, `stdin` for standard input.
    static func label(_ input: InputSource) -> String { input.path == "-" ? "stdin" : input.path }

    static func read(_ input: InputSource, state: inout FlowState, progress: ((ExtractionProgress) -> Void)?) -> FileReport {
        let file = label(input)
        state.currentFile = file
        state.report = FileReport(file: file)
        let pcap: PcapHandle
        do {
            pcap = try PcapHandle(input, label: file)
            if let filter = state.options.filter { try pcap.setFilter(filter) }
        } catch {
            state.report.error = error
            return state.report
        }
        let fileSize = input.size ?? 0
        var lastTime = Timestamp(nanoseconds: 0)
        let ending = readPackets(pcap, state: &state, lastTime: &lastTime, progress: { packets in
            progress?(ExtractionProgress(file: file, bytesRead: input.offset, fileSize: fileSize, packets: packets))
        }, quiet: {})
        if case .error(let message) = ending {
            if message.contains("different from the type of the first interface"), state.report.packets == 0, input.rewind() {
                // libpcap cannot read pcapng files whose interfaces differ in link type; our own
                // reader can, from the first byte again (kept for this).
                readWithBlockReader(input, label: file, state: &state)
                return state.report
            }
            state.report.error = CaptureError(kind: .damaged, file: file, packet: state.report.packets + 1, message: Self.describeDamage(input.readError?.message ?? message))
            state.endAll(reason: .fileDamaged, time: lastTime)
            return state.report
        }
        state.endAll(reason: .captureEnded, time: lastTime)
        return state.report
    }

    /// How ``readPackets(_:state:lastTime:progress:quiet:)`` stopped.
    enum LoopEnd {
        /// The end of the file, or a live capture stopped.
        case end
        /// libpcap's message.
        case error(String)
    }

    /// The packet loop, for files and live interfaces alike: each packet to the flow state, and
    /// each quiet moment of a live capture (libpcap's read timeout) to its clock, so that
    /// connections end on time while no packet comes. `progress` sees the packet count now and then.
    @inline(__always)
    static func readPackets(_ pcap: PcapHandle, state: inout FlowState, lastTime: inout Timestamp,
                            progress: (Int) -> Void, quiet: () -> Void) -> LoopEnd {
        while true {
            switch pcap.next() {
            case .packet(let packet):
                state.handle(packet)
                lastTime = packet.time
                if state.report.packets & 0xFFFF == 0 { progress(state.report.packets) }
            case .timeout:
                // Time went on without packets: by the wall clock, which stamps live packets too.
                state.passTime(to: .now())
                quiet()
            case .end:
                return .end
            case .error(let message):
                return .error(message)
            }
        }
    }

    static func readWithBlockReader(_ input: InputSource, label file: String, state: inout FlowState) {
        var reader: PcapngReader
        do {
            reader = try PcapngReader(input, label: file, filter: state.options.filter)
        } catch {
            state.report.error = error
            return
        }
        defer { reader.close() }
        var lastTime = Timestamp(nanoseconds: 0)
        while true {
            do throws(PcapngReader.ReadError) {
                let more = try reader.next { packet, passes in
                    if passes { state.handle(packet) } else { state.report.packets += 1 }
                    lastTime = packet.time
                }
                if !more { break }
            } catch {
                state.report.error = CaptureError(kind: .damaged, file: file, packet: state.report.packets + 1, message: error.message)
                state.endAll(reason: .fileDamaged, time: lastTime)
                return
            }
        }
        state.endAll(reason: .captureEnded, time: lastTime)
    }

    static func describeDamage(_ libpcapMessage: String) -> String {
        if libpcapMessage.lowercased().contains("truncated") {
            return "capture truncated in the middle of a record (libpcap: \(libpcapMessage)); the packets before it were read"
        }
        return "damaged record (libpcap: \(libpcapMessage)); the packets before it were read"
    }


}

/// Everything the extractor changes per packet, in one struct mutated in place: one access to
/// it per packet from the class, instead of a checked access for each field.
struct FlowState {
    let options: ExtractionOptions
    let observer: any SessionObserver
    let ports: PortSet
    var table = FlowTable()
    var connections: [Connection] = []
    var freeSlots: [Int] = []
    /// The number the next session gets (settable, to run on from sessions read elsewhere).
    var nextSessionID = 1
    var selectedSession = 0
    /// Connections closed or reset, in order, waiting out ``linger``; `generation` tells a slot's
    /// later occupant from the one queued.
    var closingQueue = Deque<(slot: Int, generation: Int)>()
    var nextGeneration = 0
    var lastIdleCheck = Timestamp(nanoseconds: 0)
    var currentFile = ""
    var report = FileReport(file: "")
    /// TLS secrets (from the options, or found in a pcapng file).
    var keys: KeyLogStore?

    /// The idle timeout in nanoseconds.
    let idleLimit: Int64

    init(options: ExtractionOptions, observer: any SessionObserver) {
        self.options = options
        self.observer = observer
        self.ports = PortSet(options.extraPorts)
        self.keys = options.keys
        idleLimit = Int64(options.idleTimeout * 1_000_000_000)
    }

    // MARK: Packets

    @inline(__always)
    mutating func handle(_ packet: CapturedPacket) {
        report.packets += 1
        let segment: TCPSegment
        switch PacketDecoder.decode(packet.bytes, linkType: packet.linkType) {
        case .segment(let decoded):
            segment = decoded
        case .notTCP:
            return
        case .truncatedHeader:
            report.truncatedHeaders += 1
            return
        case .corrupt(let message):
            report.corruptPackets += 1
            if report.firstCorruption == nil { report.firstCorruption = (report.packets, message) }
            return
        case .unsupportedLinkType:
            report.unsupportedLinkPackets += 1
            report.unsupportedLinkType = packet.linkType
            return
        }
        let time = packet.time
        passTime(to: time)

        var slot: Int
        if let found = table.find(segment.key) {
            slot = found
            if connections[slot].isReplaced(by: segment) && connections[slot].handshakeSeen {
                end(slot: slot, reason: connections[slot].firstFIN.map { .closed(by: $0) } ?? .replaced, time: time)
                slot = open(segment, time: time)
            } else if time.nanoseconds - connections[slot].lastSeen.nanoseconds > idleLimit {
                // Long after the connection fell silent (a capture that jumps in time): the old
                // session ended idle, and this packet belongs to a new one.
                expire(slot: slot)
                guard segment.isSYN || segment.payloadLength > 0, !segment.isRST else { return }
                slot = open(segment, time: time)
            }
        } else {
            // Stray ACKs, FINs and resets of connections we never saw carry nothing.
            guard segment.isSYN || segment.payloadLength > 0, !segment.isRST else { return }
            slot = open(segment, time: time)
        }
        process(segment, slot: slot, time: time)
    }

    /// Ends the connections whose time has come at `time`: idle ones, and closed or reset ones
    /// that waited out their linger.
    @inline(__always)
    mutating func passTime(to time: Timestamp) {
        advanceClock(to: time)
        if clock.nanoseconds - lastIdleCheck.nanoseconds > 10_000_000_000 {
            expireIdle(now: clock)
        }

        // Closed and reset connections linger for packets stored late, then end.
        while !closingQueue.isEmpty, let (slot, generation) = closingQueue.first {
            guard connections[slot].live, connections[slot].generation == generation, let reason = connections[slot].closing else {
                closingQueue.removeFirst()
                continue
            }
            guard time.nanoseconds - connections[slot].closedAt.nanoseconds > Self.linger(connections[slot].roundTrip) else { break }
            closingQueue.removeFirst()
            end(slot: slot, reason: reason, time: connections[slot].closedAt)
        }
    }

    /// Capture time as far as idle expiry trusts it. One packet stamped far ahead (a bad clock, a
    /// corrupt record) would otherwise end every open session; a jump longer than the idle
    /// timeout is believed only when the next packet confirms it.
    var clock = Timestamp(nanoseconds: Int64.min / 2)
    var unconfirmedJump: Timestamp?

    mutating func advanceClock(to time: Timestamp) {
        let limit = idleLimit
        if clock.nanoseconds == Int64.min / 2 || (time > clock && time.nanoseconds - clock.nanoseconds <= limit) {
            clock = max(clock, time)
            unconfirmedJump = nil
        } else if time > clock {
            if let jump = unconfirmedJump, time >= jump, time.nanoseconds - jump.nanoseconds <= limit {
                clock = time
                unconfirmedJump = nil
            } else {
                unconfirmedJump = time
            }
        }
    }

    mutating func open(_ segment: TCPSegment, time: Timestamp) -> Int {
        var connection = Connection(key: segment.key, first: segment, time: time, smtpPorts: ports)
        nextGeneration += 1
        connection.generation = nextGeneration
        report.tcpConnections += 1
        let slot: Int
        if let free = freeSlots.popLast() {
            connections[free] = connection
            slot = free
        } else {
            connections.append(connection)
            slot = connections.count - 1
        }
        table.insert(segment.key, slot: slot)
        connections[slot].live = true
        return slot
    }

    @inline(__always)
    mutating func process(_ segment: TCPSegment, slot: Int, time: Timestamp) {
        connections[slot].lastSeen = time
        if connections[slot].roundTrip == nil, segment.payloadLength == 0 {
            connections[slot].observeHandshake(segment, time: time)
        }
        if connections[slot].kind != .smtp || connections[slot].sessionID == 0 {
            if segment.isSYN, !segment.hasACK, connections[slot].clientISN == nil {
                connections[slot].clientISN = segment.sequence
                connections[slot].clientIsA = segment.forward
                connections[slot].handshakeSeen = true
            }
            if segment.payloadLength > 0, !segment.payload.isEmpty || connections[slot].kind == .smtp {
                connections[slot].classify(segment)
                if connections[slot].kind == .smtp { startSession(slot: slot) }
            }
            if connections[slot].kind == .ignored {
                if segment.isRST { forget(slot: slot); return }
                if segment.isFIN {
                    if segment.forward { connections[slot].finA = true } else { connections[slot].finB = true }
                    if connections[slot].finA && connections[slot].finB { forget(slot: slot) }
                }
                return
            }
        }
        let sessionID = connections[slot].sessionID
        if sessionID != selectedSession {
            selectedSession = sessionID
            observer.select(session: sessionID)
        }
        connections[slot].receive(segment, time: time, observer: observer)
        guard connections[slot].closing == nil else {
            // Bytes stored after the close: the session's end moves to them.
            if segment.payloadLength > 0 { connections[slot].closedAt = max(connections[slot].closedAt, time) }
            return
        }
        if segment.isRST {
            // Captures made on several CPUs can store the last data after the reset: wait a little.
            close(slot: slot, reason: .reset(by: connections[slot].side(forward: segment.forward)), time: time)
        } else if connections[slot].isClosed {
            // Both FINs are in sequence: nothing new can belong to this connection.
            end(slot: slot, reason: .closed(by: connections[slot].firstFIN ?? connections[slot].side(forward: segment.forward)), time: time)
        }
    }

    /// How long (in capture time) a reset connection still takes packets: what the peer had in
    /// flight when the reset came arrives within a round trip, and captures made on several CPUs
    /// store some packets late. Twice the handshake's round trip, 10 ms to 2 s; 2 s without one.
    static func linger(_ roundTrip: Int64?) -> Int64 {
        guard let roundTrip else { return 2_000_000_000 }
        return max(10_000_000, min(2_000_000_000, 2 * roundTrip))
    }

    mutating func close(slot: Int, reason: SessionEndReason, time: Timestamp) {
        connections[slot].closing = reason
        connections[slot].closedAt = time
        closingQueue.append((slot, connections[slot].generation))
    }

    mutating func startSession(slot: Int) {
        let clientIsA = connections[slot].clientIsA ?? true
        connections[slot].streamA.side = clientIsA ? .client : .server
        connections[slot].streamB.side = clientIsA ? .server : .client
        connections[slot].dialogue = SessionReader(SMTPDialogue(expectGreeting: connections[slot].handshakeSeen), keys: keys)
        let key = connections[slot].key
        let info = SessionInfo(
            id: nextSessionID,
            client: key.endpoint(first: clientIsA),
            server: key.endpoint(first: !clientIsA),
            start: connections[slot].start,
            source: currentFile,
            handshakeSeen: connections[slot].handshakeSeen)
        nextSessionID += 1
        report.sessions += 1
        connections[slot].session = info
        connections[slot].sessionID = info.id
        observer.sessionStarted(info)
        selectedSession = info.id
        observer.select(session: info.id)
    }

    mutating func end(slot: Int, reason: SessionEndReason, time: Timestamp) {
        if let session = connections[slot].session {
            if session.id != selectedSession {
                selectedSession = session.id
                observer.select(session: session.id)
            }
            connections[slot].finish(time: time, observer: observer)
            for failure in connections[slot].dialogue.tlsFailures {
                report.tlsFailures.append("session \(session.id): \(failure)")
            }
            observer.sessionEnded(session, summary: connections[slot].dialogue.summary, reason: reason, time: time)
        }
        forget(slot: slot)
    }

    mutating func forget(slot: Int) {
        table.remove(connections[slot].key)
        connections[slot].live = false
        connections[slot].dialogue = SessionReader()
        connections[slot].streamA = TCPStream()
        connections[slot].streamB = TCPStream()
        connections[slot].session = nil
        connections[slot].sessionID = 0
        freeSlots.append(slot)
    }

    mutating func expireIdle(now: Timestamp) {
        lastIdleCheck = now
        let limit = idleLimit
        for slot in connections.indices where connections[slot].live && now.nanoseconds - connections[slot].lastSeen.nanoseconds > limit {
            expire(slot: slot)
        }
    }

    /// Ends a connection nothing was seen on for the idle timeout (or one closing).
    mutating func expire(slot: Int) {
        end(slot: slot, reason: connections[slot].closing ?? .idle, time: connections[slot].closing != nil ? connections[slot].closedAt : connections[slot].lastSeen)
    }

    /// Ends every open connection, oldest session first.
    mutating func endAll(reason: SessionEndReason, time: Timestamp) {
        let open = connections.indices.filter { connections[$0].live }
            .map { (slot: $0, id: connections[$0].sessionID == 0 ? Int.max : connections[$0].sessionID) }
            .sorted { $0.id < $1.id }.map(\.slot)
        for slot in open {
            end(slot: slot, reason: connections[slot].closing ?? reason, time: connections[slot].closing != nil ? connections[slot].closedAt : max(time, connections[slot].lastSeen))
        }
        closingQueue.removeAll()
    }
}
