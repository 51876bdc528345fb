import CPcap
import SMTPCore
import SMTPFiles

/// A capture file opened with libpcap (pcap or pcapng), read packet by packet.
///
/// The pull API (`pcap_next_ex`) hands out pointers into libpcap's buffer, valid until the next
/// call: packets are decoded in place, never copied.
final class PcapFile {
    let handle: OpaquePointer
    let path: String
    /// The link type of the first interface (libpcap's DLT value).
    let linkType: Int32

    /// Opens a capture on an input read once (libpcap reads it through a C stream over it).
    init(_ input: InputSource, label: String) throws(CaptureError) {
        self.path = label
        guard let stream = input.cStream() else {
            throw CaptureError(kind: .cannotOpen, file: label, message: "cannot read")
        }
        var errorBuffer = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE) + 1)
        guard let handle = pcap_fopen_offline_with_tstamp_precision(stream, UInt32(PCAP_TSTAMP_PRECISION_NANO), &errorBuffer) else {
            fclose(stream)
            let message = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw CaptureError.openFailed(file: label, libpcapMessage: message)
        }
        self.handle = handle
        self.linkType = pcap_datalink(handle)
    }

    deinit { pcap_close(handle) }

    /// Applies a BPF filter (tcpdump syntax).
    func setFilter(_ expression: String) throws(CaptureError) {
        var program = bpf_program()
        guard pcap_compile(handle, &program, expression, 1, PCAP_NETMASK_UNKNOWN) == 0 else {
            throw CaptureError(kind: .badArguments, file: path, message: "bad --filter '\(expression)': \(lastError)")
        }
        defer { pcap_freecode(&program) }
        guard pcap_setfilter(handle, &program) == 0 else {
            throw CaptureError(kind: .badArguments, file: path, message: "cannot apply --filter '\(expression)': \(lastError)")
        }
    }

    var lastError: String { String(cString: pcap_geterr(handle)) }

    enum Next {
        case packet(CapturedPacket)
        case end
        case error(String)
    }

    @inline(__always)
    func next() -> Next {
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        switch pcap_next_ex(handle, &header, &data) {
        case 1:
            let h = header!.pointee
            return .packet(CapturedPacket(
                time: Timestamp(seconds: Int64(h.ts.tv_sec), nanoseconds: Int64(h.ts.tv_usec)),
                linkType: linkType,
                bytes: UnsafeRawBufferPointer(start: data, count: Int(h.caplen)),
                wireLength: Int(h.len)))
        case PCAP_ERROR_BREAK:
            return .end
        default:
            return .error(lastError)
        }
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
