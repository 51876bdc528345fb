import CPcap
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SMTPCore
import SMTPFiles

/// A libpcap handle, on a capture file (pcap or pcapng) or on a live interface, read packet by
/// packet. Files and interfaces go through the same ``next()``, and so through the same packet
/// loop in ``SMTPExtractor``.
///
/// The pull API (`pcap_next_ex`) hands out pointers into libpcap's buffer, valid until the next
/// call: packets are decoded in place, never copied.
final class PcapHandle {
    let handle: OpaquePointer
    /// How the source is named in reports and sessions: the file as given, or the interface.
    let label: String
    /// The link type of the first interface (libpcap's DLT value).
    let linkType: Int32
    /// Nanoseconds per unit of `ts.tv_usec`: 1 when libpcap gives nanoseconds, 1000 otherwise.
    let nanosecondsPerUnit: Int64
    /// Where every packet read is also written (`--pcap`), with `pcap_dump`.
    private(set) var dumper: OpaquePointer?
    /// A capture on an interface, not from a file.
    let isLive: Bool

    /// Opens a capture on an input read once (libpcap reads it through a C stream over it).
    init(_ input: InputSource, label: String) throws(CaptureError) {
        self.label = label
        guard let stream = input.cStream() else {
            throw CaptureError(kind: .cannotOpen, file: label, message: "cannot read")
        }
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_fopen_offline_with_tstamp_precision(stream, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer) else {
            fclose(stream)
            throw CaptureError.openFailed(file: label, libpcapMessage: Self.text(errorBuffer))
        }
        self.handle = handle
        self.linkType = pcap_datalink(handle)
        self.nanosecondsPerUnit = 1
        self.isLive = false
    }

    /// Settings for capturing on an interface.
    struct LiveSettings {
        /// Bytes kept of each packet: enough for any frame, jumbo and TSO ones included.
        var snapLength: Int32 = 262_144
        /// The kernel's buffer for packets not read yet.
        var bufferSize: Int32 = 16 << 20
        /// How long a read waits for a packet before ``next()`` returns ``Next/timeout``, so that
        /// connections can end on time while nothing arrives.
        var timeoutMilliseconds: Int32 = 200
    }

    /// Starts capturing on a network interface: immediate mode (each packet is handed over as it
    /// arrives), promiscuous like tcpdump, timestamps in nanoseconds where the system has them.
    init(interface: String, settings: LiveSettings = LiveSettings()) throws(CaptureError) {
        self.label = interface
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_create(interface, &errorBuffer) else {
            throw CaptureError(kind: .cannotOpen, file: interface, message: "cannot capture: \(Self.text(errorBuffer))")
        }
        pcap_set_snaplen(handle, settings.snapLength)
        pcap_set_promisc(handle, 1)
        pcap_set_immediate_mode(handle, 1)
        pcap_set_buffer_size(handle, settings.bufferSize)
        pcap_set_timeout(handle, settings.timeoutMilliseconds)
        // Not every platform has nanosecond timestamps; microseconds do then.
        _ = pcap_set_tstamp_precision(handle, Int32(PCAP_TSTAMP_PRECISION_NANO))
        let status = pcap_activate(handle)
        if status < 0 {
            let detail = String(cString: pcap_geterr(handle))
            pcap_close(handle)
            throw CaptureError.activateFailed(interface: interface, status: status, libpcapMessage: detail)
        }
        self.handle = handle
        self.linkType = pcap_datalink(handle)
        self.nanosecondsPerUnit = pcap_get_tstamp_precision(handle) == Int32(PCAP_TSTAMP_PRECISION_NANO) ? 1 : 1000
        self.isLive = true
        // libpcap's read timeout does not end a read on Linux (its poll is retried inside
        // libpcap), so quiet moments would never be seen: reads are non-blocking, and ``next()``
        // waits on the descriptor itself, at most the timeout.
        self.timeoutMilliseconds = settings.timeoutMilliseconds
        var ends: [Int32] = [-1, -1]
        if pcap_setnonblock(handle, 1, &errorBuffer) == 0, pipe(&ends) == 0 {
            self.selectableDescriptor = pcap_get_selectable_fd(handle)
            self.wakeup = (ends[0], ends[1])
        }
    }

    /// The descriptor a live capture waits on (-1: none; libpcap then blocks in its reads).
    var selectableDescriptor: Int32 = -1
    var timeoutMilliseconds: Int32 = 200
    /// A pipe that ``breakLoop()`` writes to, so that a wait on the capture ends at once.
    var wakeup: (read: Int32, write: Int32) = (-1, -1)

    deinit {
        if wakeup.read >= 0 {
            close(wakeup.read)
            close(wakeup.write)
        }
        if let dumper { pcap_dump_close(dumper) }
        pcap_close(handle)
    }

    static func text(_ buffer: [CChar]) -> String {
        String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Applies a BPF filter (tcpdump syntax).
    func setFilter(_ expression: String) throws(CaptureError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError(kind: .badArguments, file: label, message: "bad --filter '\(expression)': \(lastError)")
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw CaptureError(kind: .badArguments, file: label, message: "cannot apply --filter '\(expression)': \(lastError)")
        }
    }

    /// Writes every packet read from now on to a pcap file at `path` (replaced if it exists).
    func save(to path: String) throws(CaptureError) {
        guard let dumper = pcap_dump_open(handle, path) else {
            throw CaptureError(kind: .cannotOpen, file: path, message: "cannot write: \(lastError)")
        }
        self.dumper = dumper
    }

    /// Pushes the packets saved so far to the file (done at quiet moments, so that a capture
    /// that is killed leaves a file readable up to then).
    func flushSaved() {
        if let dumper { pcap_dump_flush(dumper) }
    }

    /// Makes ``next()`` return ``Next/end`` once the packets the kernel already holds are read.
    /// Safe from any thread and from a signal handler (libpcap sets a flag and, on Linux, wakes
    /// the poll).
    func breakLoop() {
        pcap_breakloop(handle)
        if wakeup.write >= 0 {
            var byte: UInt8 = 1
            _ = write(wakeup.write, &byte, 1)
        }
    }

    var lastError: String { String(cString: pcap_geterr(handle)) }

    enum Next {
        case packet(CapturedPacket)
        /// A live capture waited its timeout and nothing came.
        case timeout
        /// The end of the file, or of a live capture after ``breakLoop()``.
        case end
        case error(String)
    }

    @inline(__always)
    func next() -> Next {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            // `isLive` (a constant) first: reading files pays no access check for the rest.
            if isLive, stopping {
                drained += 1
                if drained > Self.drainLimit { return .end }
            }
            return .packet(packet(header!, data))
        case 0:
            guard isLive, !stopping else { return isLive ? .end : .timeout }
            guard selectableDescriptor >= 0 else { return .timeout }
            // Nothing waiting: wait for packets or a stop, at most the timeout.
            var descriptors = [pollfd(fd: selectableDescriptor, events: Int16(POLLIN), revents: 0),
                               pollfd(fd: wakeup.read, events: Int16(POLLIN), revents: 0)]
            let ready = poll(&descriptors, 2, timeoutMilliseconds)
            if ready == 0 { return .timeout }
            if descriptors[1].revents != 0 {
                // Stopped: what the kernel already holds is read (without waiting), then the end.
                stopping = true
            }
            return next()
        case PCAP_ERROR_BREAK:
            guard isLive else { return .end }
            if !stopping {
                // Stopped: the kernel may still hold packets captured before, and libpcap may
                // have handed one over with the break. They are read without waiting, then the end.
                stopping = true
                var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
                if pcap_setnonblock(handle, 1, &errorBuffer) != 0 { return .end }
            }
            if let header, data != nil { return .packet(packet(header, data)) }
            return next()
        default:
            return .error(lastError)
        }
    }

    @inline(__always)
    func packet(_ header: UnsafeMutablePointer<pcap_pkthdr>, _ data: UnsafePointer<UInt8>?) -> CapturedPacket {
        if isLive, let dumper { pcap_dump(UnsafeMutablePointer<UInt8>(dumper), header, data) }
        let h = header.pointee
        return CapturedPacket(
            time: Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: Int64(h.ts.tv_usec) * nanosecondsPerUnit),
            linkType: linkType,
            bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)),
            wireLength: Int(h.len))
    }

    /// Set once a live capture was stopped (``breakLoop()``): what is left is read without waiting.
    private var stopping = false
    private var drained = 0
    /// At most this many packets are read after a stop, however fast they keep coming.
    static let drainLimit = 10_000

    /// Packets the kernel dropped because they were not read in time (live captures; 0 when
    /// libpcap cannot tell).
    var packetsDropped: Int {
        var stats = pcap_stat()
        guard pcap_stats(handle, &stats) == 0 else { return 0 }
        return Int(stats.ps_drop)
    }
}

/// One packet as the capture holds it: its link-layer frame, possibly cut by the snap length.
struct CapturedPacket {
    var time: Timestamp
    var linkType: Int32
    var bytes: UnsafeRawBufferPointer
    /// The frame's length on the wire (more than `bytes.count` when the snap length cut it).
    var wireLength: Int
}
