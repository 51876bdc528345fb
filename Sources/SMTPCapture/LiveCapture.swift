import SMTPCore

/// A capture on a network interface, opened with ``SMTPExtractor/openLive(interface:savingTo:)``
/// and read with ``SMTPExtractor/read(_:whenQuiet:)`` until ``stop()``.
///
/// It is `Sendable` for ``stop()`` alone, which another thread (a signal handler's queue) calls
/// while the reading thread waits in libpcap; `pcap_breakloop` is made for that.
public final class LiveCapture: @unchecked Sendable {
    let pcap: PcapHandle

    init(_ pcap: PcapHandle) { self.pcap = pcap }

    /// The interface captured on, as given.
    public var interface: String { pcap.label }

    /// Makes ``SMTPExtractor/read(_:whenQuiet:)`` end the open sessions and return, within one
    /// read timeout (200 ms). Safe from any thread.
    public func stop() { pcap.breakLoop() }
}

extension SMTPExtractor {
    /// Starts capturing on `interface` (libpcap: immediate mode, snap length 262144, promiscuous,
    /// timestamps from the packets), with the extraction's filter compiled against it. Packets are
    /// kept by the kernel from now on, until ``read(_:whenQuiet:)`` takes them.
    ///
    /// - Parameters:
    ///   - interface: a name as `ip link` or `tcpdump -D` lists it (`lo`, `eth0`, `any`).
    ///   - path: a pcap file to save every packet that passes the filter into (replaced if it
    ///     exists), flushed whenever the capture is quiet.
    /// - Throws: ``CaptureError``: `cannotOpen` when the interface does not exist or capturing is
    ///   not permitted (root or `CAP_NET_RAW` is needed), `badArguments` for a filter libpcap rejects.
    public func openLive(interface: String, savingTo path: String? = nil) throws(CaptureError) -> LiveCapture {
        let pcap = try PcapHandle(interface: interface)
        if let filter = options.filter { try pcap.setFilter(filter) }
        if let path { try pcap.save(to: path) }
        return LiveCapture(pcap)
    }

    /// Reads a live capture through the same packet loop as files, reporting sessions as they end,
    /// until ``LiveCapture/stop()`` (or a failure of the interface); then ends every connection
    /// still open (`capture_ended`) at the current time.
    ///
    /// - Parameter whenQuiet: called whenever no packet came for a read timeout (200 ms), after
    ///   connections due to end have ended: the moment to flush output.
    public func read(_ capture: LiveCapture, whenQuiet: () -> Void = {}) -> FileReport {
        var local = state
        state = FlowState(options: options, observer: local.observer)
        defer { state = local }
        local.currentFile = capture.interface
        local.report = FileReport(file: capture.interface)
        var lastTime = Timestamp.now()
        let ending = Self.readPackets(capture.pcap, state: &local, lastTime: &lastTime, progress: { _ in }, quiet: {
            capture.pcap.flushSaved()
            whenQuiet()
        })
        if case .error(let message) = ending {
            local.report.error = CaptureError(kind: .damaged, file: capture.interface, packet: local.report.packets + 1, message: "capture failed: \(message)")
        }
        local.report.packetsDropped = capture.pcap.packetsDropped
        local.endAll(reason: .captureEnded, time: max(lastTime, .now()))
        capture.pcap.flushSaved()
        return local.report
    }
}
