import Findings
import PacketDecoding
import PcapSource
import Reporting
import SMTPCapCore
import SMTPMachine
import Synchronization
import TCPReassembly

/// What a run found, for the exit status.
public struct RunResult: Sendable {
    public var sessions: Int
    public var findings: Int
    public var packets: UInt64
    public var warnings: [String]
}

/// Wires capture -> decode -> reassembly -> SMTP machine -> findings -> report.
public final class Engine {
    let options: EngineOptions
    let output: ReportOutput
    let errors: ReportOutput
    var printer: SessionPrinter
    var capture = CaptureFacts()
    var warnings: [String] = []

    public init(options: EngineOptions, output: ReportOutput = ReportOutput(), errors: ReportOutput = ReportOutput(fd: 2, autoFlush: true)) {
        self.options = options
        self.output = output
        self.errors = errors
        printer = SessionPrinter(options: options, output: output)
    }

    func warn(_ message: String) {
        warnings.append(message)
        errors.write("smtpcap: warning: \(message)\n")
    }

    /// Runs to the end of the input or a stop condition. Throws only when nothing could be
    /// analyzed.
    public func run() throws(PcapError) -> RunResult {
        if let interface = options.interface {
            try analyzeLive(interface)
        } else if canAnalyzeInParallel {
            try analyzeFilesInParallel()
        } else {
            var opened = 0
            var lastError: PcapError?
            for path in options.files {
                if stopRequested.load(ordering: .relaxed) { break }
                if let error = try analyzeFile(path, label: options.files.count > 1 ? path : nil) {
                    lastError = error
                    // With several files, say which failed and go on; with one, the error is the run's.
                    if options.files.count > 1 { warn(error.message) }
                } else {
                    opened += 1
                }
            }
            if opened == 0, let lastError {
                throw PcapError(lastError.kind, lastError.message)
            }
        }
        printer.writeSummary(capture)
        return RunResult(sessions: printer.summary.sessions, findings: printer.summary.totalFindings,
                         packets: capture.packets, warnings: warnings)
    }

    func analyzeLive(_ interface: String) throws(PcapError) {
        let source = try PcapSource.openLive(device: interface, snapLength: options.snapLength,
                                             promiscuous: options.promiscuous)
        try source.setFilter(options.filter ?? liveFilter(ethernet: source.datalink == 1))
        if let path = options.writeFile { try source.openDump(path) }
        if let user = options.dropToUser {
            do throws(SystemError) { try System.dropPrivileges(to: user) } catch { throw PcapError(.other, error.message) }
        }
        capture.files = ["live:\(interface)"]
        output.autoFlush = true
        errors.write("smtpcap: listening on \(interface), link-type \(source.datalinkName), snapshot length \(options.snapLength) bytes\n")
        try analyze(source, name: interface, fileLabel: nil)
        if let s = source.statistics() {
            capture.drops = .init(received: s.received, dropped: s.dropped, interfaceDropped: s.interfaceDropped)
            if s.dropped > 0 || s.interfaceDropped > 0 {
                warn("the kernel dropped \(s.dropped + s.interfaceDropped) packet(s): results may be incomplete")
            }
        }
    }

    /// Opens and analyzes one file. Returns the error when it cannot be opened; throws only
    /// for a bad filter expression (no file could be analyzed with it).
    func analyzeFile(_ path: String, label: String?) throws(PcapError) -> PcapError? {
        let source: PcapSource
        do {
            source = try PcapSource.openOffline(path, reader: options.fileReader)
            // Files: the default port filter runs after decoding (faster than interpreted
            // BPF, and it sees through VLAN tags); an expression is BPF.
            if let filter = options.filter { try source.setFilter(filter) }
            if let write = options.writeFile { try source.openDump(write) }
        } catch {
            if error.kind == .badFilter { throw error }
            return error
        }
        guard LinkType(dlt: source.datalink) != nil else {
            return Engine.unsupportedLinkType(path, source)
        }
        capture.files.append(path == "-" ? "<stdin>" : path)
        try analyze(source, name: path, fileLabel: label)
        return nil
    }

    static func unsupportedLinkType(_ name: String, _ source: PcapSource) -> PcapError {
        PcapError(.other, "\(name): link type \(source.datalinkName) is not supported (Ethernet, Linux cooked, loopback and raw IP are)")
    }

    /// The kernel filter for live capture: the ports, also inside one 802.1Q tag on Ethernet.
    func liveFilter(ethernet: Bool) -> String {
        let ports = "tcp and (" + options.ports.map { "port \($0)" }.joined(separator: " or ") + ")"
        return ethernet ? "(\(ports)) or (vlan and \(ports))" : ports
    }

    /// The packet loop: each frame decoded, filtered by port, and handed to the flow table;
    /// finished sessions go to the printer as they end.
    func analyze(_ source: PcapSource, name: String, fileLabel: String?) throws(PcapError) {
        guard let link = LinkType(dlt: source.datalink) else {
            throw Engine.unsupportedLinkType(name, source)
        }
        var pipeline = PacketPipeline(
            decoder: PacketDecoder(linkType: link), filterPorts: options.filter == nil && !source.isLive,
            ports: PortSet(options.ports),
            table: FlowTable(factory: SessionFactory(options: sessionOptions), limits: options.limits,
                             serverPorts: Set(options.ports)))
        let wallStart = System.monotonicSeconds()
        var progress = ProgressLine(enabled: options.progress && source.fileSize != nil, last: wallStart)
        var frame: UInt64 = 0
        // Counted here and added to the run's facts after the loop (all files count toward
        // the packet limit).
        var packets = capture.packets
        var firstSeconds: Int64?
        printer.startFile()
        defer {
            capture.packets = packets
            capture.add(pipeline.counts)
        }
        packetLoop: while !stopRequested.load(ordering: .relaxed) {
            switch source.next() {
            case .packet(let packet):
                frame += 1
                packets += 1
                let meta = ChunkMeta(frame: frame, timestamp: Timestamp(seconds: packet.seconds, nanoseconds: packet.nanoseconds))
                packet.withBytes { pipeline.handle($0, meta: meta) }
                if deliverFinished(&pipeline.table, file: fileLabel) && printer.limitReached { break packetLoop }
                if let limit = options.packetLimit, packets >= limit { break packetLoop }
                if let duration = options.durationSeconds, !source.isLive {
                    if firstSeconds == nil { firstSeconds = packet.seconds }
                    if Double(packet.seconds - firstSeconds!) >= duration { break packetLoop }
                }
                if frame & 0xffff == 0 {
                    if source.isLive { source.flushDump() }
                    progress.tick(source, sessions: printer.summary.sessions, since: wallStart, to: errors)
                }
            case .timeout:
                source.flushDump()
                if source.isLive {
                    // A quiet interface: idle connections still end on time (capture time is
                    // the wall clock here).
                    let now = System.now()
                    pipeline.table.advance(to: Timestamp(seconds: now.seconds, nanoseconds: now.nanoseconds))
                    if deliverFinished(&pipeline.table, file: fileLabel) && printer.limitReached { break packetLoop }
                }
            case .end:
                break packetLoop
            case .error(let message):
                capture.truncatedFile = !source.isLive
                warn("\(name): \(message); analyzed what came before the damage")
                break packetLoop
            }
            if source.isLive, let duration = options.durationSeconds, System.monotonicSeconds() - wallStart >= duration { break }
        }
        progress.clear(errors)
        pipeline.table.finishAll()
        deliverFinished(&pipeline.table, file: fileLabel)
        capture.reassembly.add(pipeline.table.stats)
        source.flushDump()
        printer.flush(all: true, file: fileLabel)
    }

    /// Prints the sessions that ended; says whether there were any.
    @discardableResult
    func deliverFinished(_ table: inout FlowTable<SessionFactory>, file: String?) -> Bool {
        guard !table.factory.finishedSessions.isEmpty else { return false }
        table.factory.drainFinished { printer.finished($0, file: file) }
        return true
    }

    var sessionOptions: SessionOptions {
        var s = SessionOptions()
        s.transcript = options.transcript
        s.implicitTLSPorts = options.implicitTLSPorts
        return s
    }
}
