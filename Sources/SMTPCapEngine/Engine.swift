import PacketDecoding
import PcapSource
import Reporting
import SMTPAnalysis
import Dispatch
import Synchronization
import TCPReassembly
#if canImport(Glibc)
import Glibc
#endif

/// Everything the command line decides.
public struct EngineOptions: Sendable {
    public enum Format: Sendable { case text, json }

    public var files: [String] = []
    public var interface: String?
    public var snapLength: Int32 = 262_144
    public var promiscuous = true
    /// A tcpdump expression that replaces the default filter.
    public var filter: String?
    public var ports: [UInt16] = [25, 587, 465, 2525]
    public var packetLimit: UInt64?
    public var sessionLimit: Int?
    public var durationSeconds: Double?
    public var writeFile: String?
    public var format = Format.text
    public var transcript = false
    public var quiet = false
    public var color = false
    public var progress = false
    public var limits = ReassemblyLimits()
    public var idleTimeoutSeconds: Int64 {
        get { limits.idleTimeoutSeconds }
        set { limits.idleTimeoutSeconds = newValue }
    }
    public var maxConnections: Int {
        get { limits.maxConnections }
        set { limits.maxConnections = newValue }
    }
    public var maxHeldBytesPerDirection: Int {
        get { limits.maxHeldBytesPerDirection }
        set { limits.maxHeldBytesPerDirection = newValue }
    }
    /// Peak memory to stay under (MiB): sets the connection and buffer limits (set it before
    /// overriding single limits).
    public var memoryBudgetMiB = 256 {
        didSet {
            let idle = limits.idleTimeoutSeconds
            limits = ReassemblyLimits.forMemory(mebibytes: memoryBudgetMiB)
            limits.idleTimeoutSeconds = idle
        }
    }
    public var implicitTLSPorts: Set<UInt16> = [465]
    /// Files analyzed at once (threads) when several are given.
    public var jobs = 1
    /// How -r files are read: mapped into memory when they are plain pcap files, or always
    /// through libpcap.
    public var fileReader = PcapSource.FileReader.automatic
    /// User to switch to after opening a live capture (nil: stay).
    public var dropToUser: String?

    public init() {}

    public var defaultFilter: String {
        ports.map { "tcp port \($0)" }.joined(separator: " or ")
    }
}

/// What a run found, for the exit status.
public struct RunResult: Sendable {
    public var sessions: Int
    public var findings: Int
    public var packets: UInt64
    public var warnings: [String]
}

/// Set by SIGINT/SIGTERM; the capture loop checks it and ends cleanly.
let stopRequested = Atomic<Bool>(false)

/// Asks a running engine to stop at the next packet (signal handlers call this).
public func requestStop() {
    stopRequested.store(true, ordering: .relaxed)
}

/// Makes an SMTP machine per connection and reports each session when it ends.
struct SessionFactory: StreamFactory {
    let options: SessionOptions
    var finishedSessions: [SessionRecord] = []
    var emptyConnections = 0

    mutating func makeConsumer(_ info: ConnectionInfo) -> SMTPSession {
        SMTPSession(info: info, options: options)
    }

    mutating func finished(_ consumer: inout SMTPSession, info: ConnectionInfo,
                           client: DirectionStats, server: DirectionStats, end: Timestamp) {
        if client.bytes == 0 && server.bytes == 0 && client.gaps == 0 && server.gaps == 0 {
            emptyConnections += 1  // a SYN with no data: nothing SMTP to say
            return
        }
        finishedSessions.append(consumer.finish(client: client, server: server, end: end))
    }
}

/// Wires capture -> decode -> reassembly -> SMTP analysis -> report.
public final class Engine {
    let options: EngineOptions
    let output: ReportOutput
    let errors: ReportOutput
    var summary = CaptureSummary()
    var capture = CaptureFacts()
    var reported = 0
    var findingsReported = 0
    var warnings: [String] = []
    /// Offline: sessions are printed in the order they started; finished ones wait here for
    /// earlier ones still open (bounded).
    var reorder: [UInt64: SessionRecord] = [:]
    var nextToPrint: UInt64 = 1
    static let reorderLimit = 4096
    let text: TextReport

    public init(options: EngineOptions, output: ReportOutput = ReportOutput(), errors: ReportOutput = ReportOutput(fd: 2, autoFlush: true)) {
        self.options = options
        self.output = output
        self.errors = errors
        self.text = TextReport(color: options.color, transcript: options.transcript)
    }

    func warn(_ message: String) {
        warnings.append(message)
        errors.write("smtpcap: warning: \(message)\n")
    }

    var sessionOptions: SessionOptions {
        var s = SessionOptions()
        s.transcript = options.transcript
        s.implicitTLSPorts = options.implicitTLSPorts
        return s
    }

    /// Runs to the end of the input or a stop condition. Throws only when nothing could be
    /// analyzed.
    public func run() throws(PcapError) -> RunResult {
        if let interface = options.interface {
            let source = try PcapSource.openLive(device: interface, snapLength: options.snapLength,
                                                 promiscuous: options.promiscuous)
            try source.setFilter(options.filter ?? liveFilter(ethernet: source.datalink == 1))
            if let path = options.writeFile { try source.openDump(path) }
            if let user = options.dropToUser { try dropPrivileges(to: user) }
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
        flushReorder(all: true)
        switch options.format {
        case .json: output.write(JSONLinesReport.summary(summary, capture: capture) + "\n")
        case .text: output.write(text.summary(summary, capture: capture))
        }
        output.flush()
        return RunResult(sessions: summary.sessions, findings: summary.totalFindings, packets: capture.packets, warnings: warnings)
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

    // MARK: - Several files at once (--jobs)

    /// Several files, no limit that depends on what came before (packet, session and time
    /// limits, one -w file, standard input): each file can be analyzed on its own.
    var canAnalyzeInParallel: Bool {
        options.jobs > 1 && options.files.count > 1 && options.packetLimit == nil && options.sessionLimit == nil
            && options.durationSeconds == nil && options.writeFile == nil && !options.files.contains("-")
    }

    /// What one file's analysis left: its report and warnings in unlinked temporary files,
    /// its tallies.
    struct FileResult: Sendable {
        var report: Int32
        var warnings: Int32
        var summary: CaptureSummary
        var capture: CaptureFacts
        var warningList: [String]
        var error: PcapError?
    }

    /// Analyzes the files on `jobs` threads, each file by its own engine (as sequential runs
    /// do: a file's sessions never continue into the next), then prints each file's report in
    /// the order given and merges the tallies in that order: the output is the same as with
    /// one job.
    func analyzeFilesInParallel() throws(PcapError) {
        let files = options.files
        let workers = min(options.jobs, files.count)
        var single = options
        single.jobs = 1
        single.progress = false
        // The memory budget is shared: each job gets its part of the connections and buffers
        // (so output can differ from one job's only where those limits are reached).
        single.limits.maxConnections = max(1, options.limits.maxConnections / workers)
        single.limits.maxHeldBytesTotal = options.limits.maxHeldBytesTotal / workers
        single.limits.maxBufferedBytesTotal = options.limits.maxBufferedBytesTotal / workers
        let perFile = single
        // Shared by the workers through a class: the next file to take and the results.
        final class Work: Sendable {
            let next = Atomic<Int>(0)
            let results: Mutex<[FileResult?]>
            init(count: Int) { results = Mutex(Array(repeating: nil, count: count)) }
        }
        var opened = 0
        var lastError: PcapError?
        // Batches of a few files per job: each batch's reports are printed (and their
        // temporary files closed) before the next starts, so open files stay few.
        let batchSize = workers * 4
        var batchStart = 0
        while batchStart < files.count && !stopRequested.load(ordering: .relaxed) {
            let batch = Array(files[batchStart..<min(files.count, batchStart + batchSize)])
            batchStart += batch.count
            let work = Work(count: batch.count)
            DispatchQueue.concurrentPerform(iterations: min(workers, batch.count)) { _ in
                while !stopRequested.load(ordering: .relaxed) {
                    let i = work.next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard i < batch.count else { break }
                    let result = Engine.analyzeAlone(batch[i], options: perFile)
                    work.results.withLock { $0[i] = result }
                }
            }
            let done = work.results.withLock { $0 }
            for (i, result) in done.enumerated() {
                guard let result else { continue }  // stopped before this file
                let failure: PcapError?
                if result.report < 0 || result.warnings < 0 {
                    // No temporary file to stage in: analyze this one here, in its turn.
                    if result.report >= 0 { close(result.report) }
                    if result.warnings >= 0 { close(result.warnings) }
                    failure = try analyzeFile(batch[i], label: batch[i])
                } else {
                    Engine.copyTemporary(result.warnings, to: errors)
                    failure = result.error
                    if failure == nil {
                        Engine.copyTemporary(result.report, to: output)
                        summary.merge(result.summary)
                        capture.merge(result.capture)
                        warnings += result.warningList
                        reported += result.summary.sessions
                    } else {
                        close(result.report)
                    }
                }
                if let failure {
                    if failure.kind == .badFilter { throw failure }
                    lastError = failure
                    warn(failure.message)
                } else {
                    opened += 1
                }
            }
        }
        if opened == 0, let lastError {
            throw PcapError(lastError.kind, lastError.message)
        }
    }

    static func analyzeAlone(_ path: String, options: EngineOptions) -> FileResult {
        let report = temporaryFile(), warnings = temporaryFile()
        guard report >= 0, warnings >= 0 else {
            return FileResult(report: report, warnings: warnings, summary: CaptureSummary(), capture: CaptureFacts(),
                              warningList: [], error: nil)
        }
        let engine = Engine(options: options, output: ReportOutput(fd: report), errors: ReportOutput(fd: warnings, autoFlush: true))
        var error: PcapError?
        do {
            error = try engine.analyzeFile(path, label: path)
        } catch let e {
            error = e
        }
        engine.output.flush()
        return FileResult(report: report, warnings: warnings, summary: engine.summary, capture: engine.capture,
                          warningList: engine.warnings, error: error)
    }

    /// An unlinked temporary file (nothing left behind, whatever happens).
    static func temporaryFile() -> Int32 {
        let dir = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
        var template = Array("\(dir)/smtpcap-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        if fd >= 0 { template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) } }
        return fd
    }

    /// Copies everything written to a temporary file to `out`, 64 KiB at a time; closes it.
    static func copyTemporary(_ fd: Int32, to out: ReportOutput) {
        guard fd >= 0 else { return }
        defer { close(fd) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = chunk.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            chunk.withUnsafeBytes { out.write(bytes: UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += off_t(n)
        }
    }

    /// The kernel filter for live capture: the ports, also inside one 802.1Q tag on Ethernet.
    func liveFilter(ethernet: Bool) -> String {
        let ports = "tcp and (" + options.ports.map { "port \($0)" }.joined(separator: " or ") + ")"
        return ethernet ? "(\(ports)) or (vlan and \(ports))" : ports
    }

    func analyze(_ source: PcapSource, name: String, fileLabel: String?) throws(PcapError) {
        guard let link = LinkType(dlt: source.datalink) else {
            throw Engine.unsupportedLinkType(name, source)
        }
        let decoder = PacketDecoder(linkType: link)
        let filterPorts = options.filter == nil && !source.isLive
        let ports = PortSet(options.ports)
        var table = FlowTable(factory: SessionFactory(options: sessionOptions), limits: options.limits,
                              serverPorts: Set(options.ports))
        var frame: UInt64 = 0
        var firstSeconds: Int64?
        let wallStart = monotonicSeconds()
        var lastProgress = wallStart
        let showProgress = options.progress && source.fileSize != nil
        nextToPrint = 1
        var fileEnded = false
        packetLoop: while true {
            if stopRequested.load(ordering: .relaxed) { break }
            switch source.next() {
            case .packet(let packet):
                frame += 1
                capture.packets += 1
                let meta = ChunkMeta(frame: frame, timestamp: Timestamp(seconds: packet.seconds, nanoseconds: packet.nanoseconds))
                switch decoder.decode(packet.bytes) {
                case .tcp(let segment):
                    if filterPorts && !ports.contains(segment.source.port) && !ports.contains(segment.destination.port) {
                        capture.otherTCP += 1
                    } else {
                        table.process(segment, frame: packet.bytes, meta: meta)
                    }
                case .notTCP: capture.notTCP += 1
                case .fragment: capture.fragments += 1
                case .malformed: capture.malformed += 1
                }
                if !table.factory.finishedSessions.isEmpty { drain(&table, fileLabel: fileLabel) }
                if let limit = options.packetLimit, capture.packets >= limit { break packetLoop }
                if let limit = options.sessionLimit, reported >= limit { break packetLoop }
                if let duration = options.durationSeconds, !source.isLive {
                    if firstSeconds == nil { firstSeconds = packet.seconds }
                    if Double(packet.seconds - firstSeconds!) >= duration { break packetLoop }
                }
                if frame & 0xffff == 0 {
                    if source.isLive { source.flushDump() }
                    if showProgress {
                        let now = monotonicSeconds()
                        if now - lastProgress >= 0.5 {
                            lastProgress = now
                            progress(source, elapsed: now - wallStart)
                        }
                    }
                }
            case .timeout:
                source.flushDump()
                if source.isLive {
                    // A quiet interface: idle connections still end on time (capture time is
                    // the wall clock here).
                    var ts = timespec()
                    clock_gettime(CLOCK_REALTIME, &ts)
                    table.advance(to: Timestamp(seconds: Int64(ts.tv_sec), nanoseconds: Int32(ts.tv_nsec)))
                    if !table.factory.finishedSessions.isEmpty { drain(&table, fileLabel: fileLabel) }
                    if let limit = options.sessionLimit, reported >= limit { break packetLoop }
                }
            case .end:
                fileEnded = true
                break packetLoop
            case .error(let message):
                capture.truncatedFile = !source.isLive
                warn("\(name): \(message); analyzed what came before the damage")
                fileEnded = true
                break packetLoop
            }
            if source.isLive, let duration = options.durationSeconds, monotonicSeconds() - wallStart >= duration { break }
        }
        _ = fileEnded
        if showProgress { errors.write("\r\u{1b}[K") }
        table.finishAll()
        drain(&table, fileLabel: fileLabel)
        capture.reassembly.add(table.stats)
        source.flushDump()
        flushReorder(all: true)
    }

    func drain(_ table: inout FlowTable<SessionFactory>, fileLabel: String?) {
        // Swapped out, not copied: clearing a copied array would allocate a new buffer.
        var done: [SessionRecord] = []
        swap(&done, &table.factory.finishedSessions)
        // Moved out one by one (iterating would copy each record, retaining all its fields).
        done.reverse()
        while let record = done.popLast() { finished(record, fileLabel: fileLabel) }
        swap(&done, &table.factory.finishedSessions)
    }

    var currentFileLabel: String?

    func finished(_ record: consuming SessionRecord, fileLabel: String?) {
        currentFileLabel = fileLabel
        if let limit = options.sessionLimit, reported >= limit { return }
        reported += 1
        summary.add(record)
        if options.interface != nil {
            emit(record)
            return
        }
        if record.id == nextToPrint && reorder.isEmpty {
            emit(record)  // the common case when sessions end in the order they began
            nextToPrint += 1
            return
        }
        let id = record.id
        reorder[id] = consume record
        flushReorder(all: false)
    }

    func flushReorder(all: Bool) {
        while let r = reorder.removeValue(forKey: nextToPrint) {
            emit(r)
            nextToPrint += 1
        }
        if all || reorder.count > Self.reorderLimit {
            let ids = reorder.keys.sorted()
            for id in ids.prefix(all ? ids.count : ids.count - Self.reorderLimit / 2) {
                emit(reorder.removeValue(forKey: id)!)
                nextToPrint = max(nextToPrint, id + 1)
            }
            while let r = reorder.removeValue(forKey: nextToPrint) {
                emit(r)
                nextToPrint += 1
            }
        }
    }

    func emit(_ record: SessionRecord) {
        if options.quiet && record.findings.isEmpty { return }
        switch options.format {
        case .json: output.write { JSONLinesReport.writeSession(record, file: currentFileLabel, into: $0) }
        case .text: output.write { text.writeSession(record, file: currentFileLabel, into: $0) }
        }
    }

    func progress(_ source: PcapSource, elapsed: Double) {
        guard let size = source.fileSize, size > 0, let at = source.fileOffset else { return }
        let rate = elapsed > 0 ? Double(at) / elapsed / 1e6 : 0
        let percent = Int(Double(at) * 100 / Double(size))
        errors.write("\rsmtpcap: \(at >> 20) of \(size >> 20) MiB (\(percent)%), \(summary.sessions) sessions, \(Int(rate)) MB/s\u{1b}[K")
    }

    func dropPrivileges(to user: String) throws(PcapError) {
        guard geteuid() == 0 else { return }
        if user == "root" { return }
        guard let pw = getpwnam(user) else {
            throw PcapError(.other, "cannot drop privileges: no user '\(user)' (use -Z root to keep them)")
        }
        let uid = pw.pointee.pw_uid, gid = pw.pointee.pw_gid
        guard setgroups(0, nil) == 0, setgid(gid) == 0, setuid(uid) == 0 else {
            throw PcapError(.other, "cannot drop privileges to '\(user)': \(String(cString: strerror(errno)))")
        }
    }
}

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
}

/// A port membership test without hashing: one bit per port.
struct PortSet {
    var bits = [UInt64](repeating: 0, count: 1024)
    init(_ ports: [UInt16]) {
        for p in ports { bits[Int(p >> 6)] |= 1 << UInt64(p & 63) }
    }
    @inline(__always)
    func contains(_ port: UInt16) -> Bool { bits[Int(port >> 6)] & (1 << UInt64(port & 63)) != 0 }
}
