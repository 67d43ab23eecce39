import Dispatch
import Findings
import PacketDecoding
import PcapSource
import Reporting
import Synchronization
import TCPReassembly

/// Several files at once (--jobs): each independent capture (a file, or files that continue
/// each other) is analyzed by its own engine, as sequential runs do; reports are printed and
/// tallies merged in the order sequential runs take them, so the output is the same as with
/// one job.
extension Engine {
    /// Several files, no limit that depends on what came before (packet, session and time
    /// limits, one -w file, standard input): each file can be analyzed on its own.
    var canAnalyzeInParallel: Bool {
        options.jobs > 1 && options.files.count > 1 && options.packetLimit == nil && options.sessionLimit == nil
            && options.durationSeconds == nil && options.writeFile == nil && !options.files.contains("-")
            && options.tlsReport == nil && options.evidenceDirectory == nil && options.format != .eve
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

    func analyzeUnitsInParallel(_ files: [[String]], labelled: Bool) throws(PcapError) {
        let workers = min(options.jobs, files.count)
        let perFile = Self.perFileOptions(options, workers: workers)
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
                    let result = Engine.analyzeAlone(batch[i], label: labelled ? batch[i][0] : nil, options: perFile)
                    work.results.withLock { $0[i] = result }
                }
            }
            let done = work.results.withLock { $0 }
            for (i, result) in done.enumerated() {
                guard let result else { continue }  // stopped before this file
                if let failure = try merge(result, unit: batch[i], label: labelled ? batch[i][0] : nil) {
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

    /// The options of one job: the memory budget is shared, so each job gets its part of the
    /// connections and buffers (output can differ from one job's only where those limits are
    /// reached).
    static func perFileOptions(_ options: EngineOptions, workers: Int) -> EngineOptions {
        var single = options
        single.jobs = 1
        single.progress = false
        single.limits.maxConnections = max(1, options.limits.maxConnections / workers)
        single.limits.maxHeldBytesTotal = options.limits.maxHeldBytesTotal / workers
        single.limits.maxBufferedBytesTotal = options.limits.maxBufferedBytesTotal / workers
        single.defragment.maxHeldBytes = options.defragment.maxHeldBytes / workers
        single.defragment.maxDatagrams = max(1, options.defragment.maxDatagrams / workers)
        return single
    }

    /// Prints one file's report and warnings and adds its tallies; returns its error.
    func merge(_ result: FileResult, unit: [String], label: String?) throws(PcapError) -> PcapError? {
        guard result.report >= 0, result.warnings >= 0 else {
            // No temporary file to stage in: analyze this one here, in its turn.
            System.close(result.report)
            System.close(result.warnings)
            return try analyzeUnit(unit, label: label)
        }
        System.drainTemporary(result.warnings) { errors.write(span: $0) }
        guard result.error == nil else {
            System.close(result.report)
            return result.error
        }
        System.drainTemporary(result.report) { output.write(span: $0) }
        printer.summary.merge(result.summary)
        printer.reported += result.summary.sessions
        capture.merge(result.capture)
        warnings += result.warningList
        return nil
    }

    static func analyzeAlone(_ unit: [String], label: String?, options: EngineOptions) -> FileResult {
        let report = System.temporaryFile(), warnings = System.temporaryFile()
        guard report >= 0, warnings >= 0 else {
            return FileResult(report: report, warnings: warnings, summary: CaptureSummary(), capture: CaptureFacts(),
                              warningList: [], error: nil)
        }
        let engine = Engine(options: options, output: ReportOutput(fd: report), errors: ReportOutput(fd: warnings, autoFlush: true))
        var error: PcapError?
        do {
            error = try engine.analyzeUnit(unit, label: label)
        } catch let e {
            error = e
        }
        engine.output.flush()
        return FileResult(report: report, warnings: warnings, summary: engine.printer.summary, capture: engine.capture,
                          warningList: engine.warnings, error: error)
    }
}
