import CPcap

/// A problem reading a capture, with the file and packet it concerns.
///
/// Its ``description`` is the one-line message users see: `FILE: packet N: what is wrong`.
public struct CaptureError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable {
        /// The file cannot be opened (missing, unreadable). Nothing was read.
        case cannotOpen
        /// The file is not a pcap or pcapng capture. Nothing was read.
        case notACapture
        /// The capture is damaged (truncated, corrupt record) after some packets; those were read.
        case damaged
        /// A link type or format smtptape cannot read.
        case unsupported
        /// A user-supplied argument (such as a BPF filter) is wrong.
        case badArguments
    }

    public var kind: Kind
    public var file: String
    /// 1-based number of the packet where the problem was found.
    public var packet: Int?
    public var message: String

    public init(kind: Kind, file: String, packet: Int? = nil, message: String) {
        self.kind = kind
        self.file = file
        self.packet = packet
        self.message = message
    }

    public var description: String {
        if let packet { return "\(file): packet \(packet): \(message)" }
        return "\(file): \(message)"
    }

    /// The exit status for this error (see the README's exit status table): 1 when part of the input was read,
    /// 2 when nothing could be done, 64 for wrong arguments.
    public var exitCode: Int32 {
        switch kind {
        case .damaged: 1
        case .badArguments: 64
        case .cannotOpen, .notACapture, .unsupported: 2
        }
    }

    static func openFailed(file: String, libpcapMessage: String) -> CaptureError {
        let lower = libpcapMessage.lowercased()
        if lower.contains("unknown file format") || lower.contains("bad dump file format") || lower.contains("file has") || lower.contains("truncated") || lower.contains("doesn't begin") {
            return CaptureError(kind: .notACapture, file: file, message: "not a pcap or pcapng capture (libpcap: \(libpcapMessage))")
        }
        if lower.contains("no such file") {
            return CaptureError(kind: .cannotOpen, file: file, message: "no such file")
        }
        if lower.contains("permission denied") {
            return CaptureError(kind: .cannotOpen, file: file, message: "permission denied")
        }
        if lower.contains("is a directory") {
            return CaptureError(kind: .cannotOpen, file: file, message: "is a directory, not a capture file")
        }
        return CaptureError(kind: .cannotOpen, file: file, message: "cannot open capture: \(libpcapMessage)")
    }

    /// Why `pcap_activate` refused an interface, for people: the missing privilege or interface
    /// named, libpcap's own words after it.
    static func activateFailed(interface: String, status: Int32, libpcapMessage: String) -> CaptureError {
        let detail = libpcapMessage.isEmpty ? String(cString: pcap_statustostr(status)) : libpcapMessage
        let message: String
        switch status {
        case PCAP_ERROR_PERM_DENIED:
            message = "permission denied: capturing needs root or the CAP_NET_RAW capability (libpcap: \(detail))"
        case PCAP_ERROR_PROMISC_PERM_DENIED:
            message = "permission denied for promiscuous mode: capturing needs root or the CAP_NET_RAW and CAP_NET_ADMIN capabilities (libpcap: \(detail))"
        case PCAP_ERROR_NO_SUCH_DEVICE:
            message = "no such interface (libpcap: \(detail))"
        case PCAP_ERROR_IFACE_NOT_UP:
            message = "the interface is down (libpcap: \(detail))"
        default:
            message = "cannot capture: \(detail)"
        }
        return CaptureError(kind: .cannotOpen, file: interface, message: message)
    }
}
