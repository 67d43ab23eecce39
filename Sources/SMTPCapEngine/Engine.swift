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
    /// A requested output (`--tls-report`, `--evidence`) could not be written.
    public var outputFailed = false
}

/// Wires capture -> decode -> reassembly -> SMTP machine -> findings -> report.
public final class Engine {
    let options: EngineOptions
    let output: ReportOutput
    let errors: ReportOutput
    var printer: SessionPrinter
    var capture = CaptureFacts()
    var warnings: [String] = []
    /// `--tls-report`'s file, opened before the capture (and before privileges are dropped).
    var tlsReportFile: Int32 = -1
    /// `--evidence`'s directory, opened before the capture; files are made relative to it.
    var evidenceDirectory: Int32 = -1
    /// Live capture with `--evidence` and no `-w`: every packet goes to this file in `$TMPDIR`
    /// (the descriptor until the capture takes it), for the evidence to be cut from at the
    /// end; removed afterwards.
    var spoolPath: String?
    var spoolFile: Int32 = -1
    /// The files of each capture analyzed, in order (a unit: one file, or files that
    /// continue each other): evidence is cut from the unit a session came from.
    var evidenceUnits: [[String]] = []
    var outputFailed = false

    public init(options: EngineOptions, output: ReportOutput = ReportOutput(), errors: ReportOutput = ReportOutput(fd: 2, autoFlush: true)) {
        self.options = options
        self.output = output
        self.errors = errors
        printer = SessionPrinter(options: options, output: output, errors: errors)
    }

    /// The sessions, in the order they started, when the format is `records`.
    public var sessions: [SessionRecord] { printer.collected }
    /// Sessions past the bounds of `records` (counted, not kept).
    public var sessionsNotKept: Int { printer.notCollected }
    /// What the capture held beyond its sessions.
    public var captureFacts: CaptureFacts { capture }
    /// The cross-session summary of what was analyzed.
    public var summary: CaptureSummary { printer.summary }

    func warn(_ message: String) {
        warnings.append(message)
        errors.write("smtpcap: warning: \(message)\n")
    }

    /// Runs to the end of the input or a stop condition. Throws only when nothing could be
    /// analyzed.
    public func run() throws(PcapError) -> RunResult {
        try openOutputs()
        defer {
            System.close(tlsReportFile)
            System.close(evidenceDirectory)
            System.close(spoolFile)
            if let spoolPath { System.remove(spoolPath) }
        }
        if let interface = options.interface {
            try analyzeLive(interface)
        } else {
            // Files that continue each other (rotation) are one capture, in time order.
            let units = options.files.count > 1
                ? FilePlan.units(options.files, reader: options.fileReader, maxGap: options.idleTimeoutSeconds)
                : [options.files]
            let labelled = units.count > 1
            evidenceUnits = units
            printer.numberedUnits = labelled
            if canAnalyzeInParallel && units.count > 1 {
                try analyzeUnitsInParallel(units, labelled: labelled)
            } else {
                var opened = 0
                var lastError: PcapError?
                for unit in units {
                    if stopRequested.load(ordering: .relaxed) { break }
                    if let error = try analyzeUnit(unit, label: labelled ? unit[0] : nil) {
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
        }
        printer.writeSummary(capture)
        writeOutputs()
        return RunResult(sessions: printer.summary.sessions, findings: printer.summary.totalFindings,
                         packets: capture.packets, warnings: warnings, outputFailed: outputFailed)
    }

    func analyzeLive(_ interface: String) throws(PcapError) {
        let source = try PcapSource.openLive(device: interface, snapLength: options.snapLength,
                                             promiscuous: options.promiscuous)
        try source.setFilter(options.filter ?? liveFilter(ethernet: source.datalink == 1))
        if let path = options.writeFile { try source.openDump(path) }
        if spoolFile >= 0, let spoolPath {
            let fd = spoolFile
            spoolFile = -1
            try source.openDump(fd: fd, name: spoolPath)
        }
        if let user = options.dropToUser {
            do throws(SystemError) { try System.dropPrivileges(to: user) } catch { throw PcapError(.other, error.message) }
            try checkOutputsAfterDrop(user: user)
        }
        capture.files = ["live:\(interface)"]
        output.autoFlush = true
        errors.write("smtpcap: listening on \(interface), link-type \(source.datalinkName), snapshot length \(options.snapLength) bytes\n")
        guard LinkType(dlt: source.datalink) != nil else { throw Engine.unsupportedLinkType(interface, source) }
        var run = makeRun(linkType: source.datalink)
        analyze(source, name: interface, fileLabel: nil, run: &run)
        finish(&run, fileLabel: nil)
        if let s = source.statistics() {
            capture.drops = .init(received: s.received, dropped: s.dropped, interfaceDropped: s.interfaceDropped)
            if s.dropped > 0 || s.interfaceDropped > 0 {
                warn("the kernel dropped \(s.dropped + s.interfaceDropped) packet(s): results may be incomplete")
            }
        }
    }

    /// Opens one file for reading, with the filter and the dump file.
    func open(_ path: String) throws(PcapError) -> PcapSource {
        let source = try PcapSource.openOffline(path, reader: options.fileReader)
        // Files: the default port filter runs after decoding (faster than interpreted BPF,
        // and it sees through VLAN tags and tunnels); an expression is BPF.
        if let filter = options.filter { try source.setFilter(filter) }
        if let write = options.writeFile { try source.openDump(write) }
        return source
    }

    /// Analyzes files that continue each other as one capture (one file, as a rule). Returns
    /// the error when none could be opened; throws only for a bad filter expression.
    func analyzeUnit(_ paths: [String], label: String?) throws(PcapError) -> PcapError? {
        var run: CaptureRun?
        var lastError: PcapError?
        printer.startFile()
        for path in paths {
            if stopRequested.load(ordering: .relaxed) || run?.stopped == true { break }
            let source: PcapSource
            do {
                source = try open(path)
            } catch {
                if error.kind == .badFilter { throw error }
                if paths.count > 1 { warn(error.message) }
                lastError = error
                continue
            }
            // A pcapng file may hold interfaces of other link types; its packets say which.
            guard LinkType(dlt: source.datalink) != nil || source.interfaceCount > 1 else {
                lastError = Engine.unsupportedLinkType(path, source)
                if paths.count > 1 { warn(lastError!.message) }
                continue
            }
            let continues = run != nil
            if !continues { run = makeRun(linkType: source.datalink) }
            let name = path == "-" ? "<stdin>" : path
            capture.files.append(name)
            let firstFrame = run!.frame + 1
            analyze(source, name: path, fileLabel: label, run: &run!)
            capture.fileFrames.append(FileFrames(file: name, firstFrame: firstFrame, lastFrame: run!.frame, continues: continues))
        }
        // Moved out, not copied: a copy would share the flow table, and ending its connections
        // would copy every array of it.
        guard var finished = run.take() else { return lastError ?? PcapError(.unreadable, "nothing to read") }
        finish(&finished, fileLabel: label)
        return nil
    }

    static func unsupportedLinkType(_ name: String, _ source: PcapSource) -> PcapError {
        PcapError(.other, "\(name): link type \(source.datalinkName) is not supported (Ethernet, Linux cooked, loopback and raw IP are)")
    }

    /// The kernel filter for live capture: the ports, and what may carry them: the tunnels
    /// smtpcap decodes, IP fragments, MPLS and PPPoE sessions (these two whole: libpcap's
    /// `mpls` and `pppoes` keywords move the offsets of every test after them), and the ports
    /// under VLAN tags (last, for the same reason). Tunnelled traffic on other ports is dropped
    /// after decoding.
    func liveFilter(ethernet: Bool) -> String {
        let ports = "tcp and (" + options.ports.map { "port \($0)" }.joined(separator: " or ") + ")"
        let carriers = "udp port 4789 or udp port 8472 or udp port 6081 or ip proto 47 or ip proto 4 or ip proto 41"
            + " or ip6 proto 47 or ip6 proto 4 or ip6 proto 41 or (ip[6:2] & 0x3fff != 0) or (ip6 and ip6[6] == 44)"
        guard ethernet else { return "(\(ports)) or \(carriers)" }
        return "(\(ports)) or \(carriers) or ether proto 0x8847 or ether proto 0x8864 or (vlan and (\(ports)))"
    }

    /// The state of one capture being analyzed: its pipeline (flow table, reassembly) and
    /// its frame count, carried from file to file when files continue each other.
    struct CaptureRun {
        /// Taken out for the packet loop (a local is faster there than a field reached
        /// through a reference), put back after it.
        var pipeline: PacketPipeline?
        var frame: UInt64 = 0
        var firstSeconds: Int64?
        /// A limit (packets, sessions, duration) ended the run.
        var stopped = false
    }

    func makeRun(linkType: Int32) -> CaptureRun {
        let contexts = FlowContexts(limit: max(256, options.limits.maxConnections / 4))
        return CaptureRun(pipeline: PacketPipeline(
            linkType: linkType, filterPorts: options.filter == nil, ports: PortSet(options.ports),
            table: FlowTable(factory: SessionFactory(options: sessionOptions, contexts: contexts), limits: options.limits,
                             serverPorts: Set(options.ports)),
            defragment: options.defragment, contexts: contexts))
    }

    /// Ends every connection still open and books the capture's facts.
    func finish(_ run: inout CaptureRun, fileLabel: String?) {
        guard var pipeline = run.pipeline.take() else { return }
        pipeline.table.finishAll()
        deliverFinished(&pipeline.table, file: fileLabel)
        capture.reassembly.add(pipeline.table.stats)
        capture.defragment.add(pipeline.finish())
        capture.emptyConnections += pipeline.table.factory.emptyConnections
        capture.tunnelsOverLimit += pipeline.contexts.overflowed
        capture.add(pipeline.counts)
        printer.flush(all: true, file: fileLabel)
    }

    /// The packet loop over one source: each frame decoded, filtered by port, and handed to
    /// the flow table; finished sessions go to the printer as they end.
    func analyze(_ source: PcapSource, name: String, fileLabel: String?, run: inout CaptureRun) {
        let wallStart = System.monotonicSeconds()
        var progress = ProgressLine(enabled: options.progress && source.fileSize != nil, last: wallStart)
        // Counted here and added to the run's facts after the loop (all files count toward
        // the packet limit).
        var packets = capture.packets
        var frame = run.frame
        guard var pipeline = run.pipeline.take() else { return }
        // Sessions name their interface when the file gives names (pcapng; looked up as each
        // session ends, since a file may name its interfaces only as it goes).
        pipeline.contexts.interfaceName = source.readsPcapng ? { [source] in source.interfaceName($0) } : nil
        defer {
            run.pipeline = pipeline
            capture.packets = packets
            run.frame = frame
            source.flushDump()
            progress.clear(errors)
            if source.dumpSkipped > 0, let path = options.writeFile {
                warn("\(name): \(source.dumpSkipped) packet(s) of interfaces of another link type were not written to \(path) (a pcap file holds one link type)")
            }
            if source.unfilterable > 0 {
                warn("\(name): \(source.unfilterable) packet(s) dropped: the filter expression cannot be compiled for their interface's link type")
            }
        }
        packetLoop: while !stopRequested.load(ordering: .relaxed) {
            switch source.next() {
            case .packet(let packet):
                frame += 1
                packets += 1
                let meta = ChunkMeta(frame: frame, timestamp: Timestamp(clamping: packet.seconds, nanoseconds: packet.nanoseconds))
                if packet.interface == 0 && packet.linkType == pipeline.decoderLinkType {
                    packet.withBytes { pipeline.handle($0, meta: meta) }
                } else {
                    packet.withBytes { pipeline.handle($0, meta: meta, linkType: packet.linkType, interface: packet.interface) }
                }
                if deliverFinished(&pipeline.table, file: fileLabel) && printer.limitReached { run.stopped = true; break packetLoop }
                if let limit = options.packetLimit, packets >= limit { run.stopped = true; break packetLoop }
                if let duration = options.durationSeconds, !source.isLive {
                    if run.firstSeconds == nil { run.firstSeconds = meta.timestamp.seconds }
                    if Double(meta.timestamp.seconds - run.firstSeconds!) >= duration { run.stopped = true; break packetLoop }
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
        s.recordAddresses = options.recordAddresses
        s.recordRecipientDomains = options.tlsReport != nil
        return s
    }
}
