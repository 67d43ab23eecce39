import Findings
import Reporting
import SMTPCapCore
import SMTPMachine

/// Takes finished sessions: counts them into the summary and prints each. Offline, sessions
/// are printed in the order they started: one that ends before an earlier one waits here
/// (bounded); live, each is printed as it ends.
struct SessionPrinter {
    static let reorderLimit = 4096

    let options: EngineOptions
    let output: ReportOutput
    let text: TextReport
    var summary = CaptureSummary()
    var eve: EVEReport
    /// The RFC 8460 report's counts (with `--tls-report`).
    var tlsReport = TLSReport()
    /// Sessions with findings whose packets go to the evidence directory (its descriptor, and
    /// the user to give the files to).
    var evidence: [EvidenceSession] = []
    var evidenceNotKept = 0
    var evidenceDirectory: Int32 = -1
    var evidenceOwner: (uid: UInt32, gid: UInt32)?
    /// The capture being analyzed (counted from 0), and whether there are several: then
    /// evidence names carry its number.
    var unit = -1
    var numberedUnits = false
    /// Sessions counted (at most the session limit).
    var reported = 0
    private var reorder: [UInt64: SessionRecord] = [:]
    private var nextToPrint: UInt64 = 1

    let errors: ReportOutput

    init(options: EngineOptions, output: ReportOutput, errors: ReportOutput) {
        self.options = options
        self.output = output
        self.errors = errors
        text = TextReport(color: options.color, transcript: options.transcript)
        eve = EVEReport(addresses: options.recordAddresses)
    }

    var limitReached: Bool { options.sessionLimit.map { reported >= $0 } ?? false }

    /// A new file: its sessions are numbered from 1 again.
    mutating func startFile() {
        nextToPrint = 1
        unit += 1
    }

    mutating func finished(_ record: consuming SessionRecord, file: String?) {
        if limitReached { return }
        reported += 1
        summary.add(record)
        if options.tlsReport != nil { tlsReport.add(record) }
        if options.format == .eve { eve.note(record) }
        if evidenceDirectory >= 0 && !record.findings.isEmpty { keepEvidence(record, file: file) }
        if options.interface != nil {
            emit(record, file: file)
            return
        }
        if record.id == nextToPrint && reorder.isEmpty {
            emit(record, file: file)  // the common case when sessions end in the order they began
            nextToPrint += 1
            return
        }
        let id = record.id
        reorder[id] = consume record
        flush(all: false, file: file)
    }

    /// Prints what is due; with `all`, everything held, in order.
    mutating func flush(all: Bool, file: String?) {
        while let r = reorder.removeValue(forKey: nextToPrint) {
            emit(r, file: file)
            nextToPrint += 1
        }
        guard all || reorder.count > Self.reorderLimit else { return }
        let ids = reorder.keys.sorted()
        for id in ids.prefix(all ? ids.count : ids.count - Self.reorderLimit / 2) {
            // Taken out before `emit` is called: a call's receiver is read before its
            // arguments, and a receiver still sharing the table would copy it whole.
            guard let r = reorder.removeValue(forKey: id) else { continue }
            emit(r, file: file)
            nextToPrint = max(nextToPrint, id + 1)
        }
        while let r = reorder.removeValue(forKey: nextToPrint) {
            emit(r, file: file)
            nextToPrint += 1
        }
    }

    /// Sessions kept for the caller (format `records`), within bounds: past them the rest is
    /// counted, not kept, and the caller refuses the capture.
    var collected: [SessionRecord] = []
    var collectedLines = 0
    var notCollected = 0
    static let maxCollected = 20_000
    static let maxCollectedLines = 1_000_000

    mutating func emit(_ record: SessionRecord, file: String?) {
        if options.quiet && record.findings.isEmpty { return }
        switch options.format {
        case .records:
            let lines = record.transcript?.count ?? 0
            if collected.count >= Self.maxCollected || collectedLines + lines > Self.maxCollectedLines {
                notCollected += 1
            } else {
                collectedLines += lines
                collected.append(record)
            }
        case .json: output.write { JSONLinesReport.writeSession(record, file: file, into: $0) }
        case .eve: output.write { eve.writeSession(record, into: $0) }
        case .text: output.write { text.writeSession(record, file: file, into: $0) }
        }
    }

    /// A session with findings: its text report goes into the evidence directory now (a new
    /// file, never overwriting); its flow is kept for the pcap cut at the end.
    mutating func keepEvidence(_ record: SessionRecord, file: String?) {
        guard evidence.count < EvidenceSession.maxSessions else {
            evidenceNotKept += 1
            return
        }
        var session = EvidenceSession(
            id: record.id, uid: FlowIdentity(record).uid, unit: max(0, unit), client: record.client, server: record.server,
            start: record.start, end: record.end, verdict: record.verdict.rawValue,
            tunnel: TunnelStack(record.tunnel), interface: record.interface)
        if numberedUnits { session.numbered = true }
        let report = TextReport(color: false, transcript: options.transcript)
        let sink = ByteSink(capacity: 4096)
        report.writeSession(record, file: file, into: sink)
        let text = withExtendedLifetime(sink) { Array(sink.bytes) }
        do throws(SystemError) {
            let fd = try System.createFile(in: evidenceDirectory, session.name + ".txt", owner: evidenceOwner)
            defer { System.close(fd) }
            guard System.write(fd, text) else { throw SystemError("cannot write \(session.name).txt") }
            evidence.append(session)
        } catch {
            evidenceNotKept += 1
            errors.write("smtpcap: warning: evidence: \(error.message)\n")
        }
    }

    mutating func writeSummary(_ capture: CaptureFacts) {
        switch options.format {
        case .json: output.write(JSONLinesReport.summary(summary, capture: capture) + "\n")
        case .eve: output.write { eve.writeEnd(summary, capture: capture, into: $0) }
        case .text: output.write { text.writeSummary(summary, capture: capture, into: $0) }
        case .records: break
        }
        output.flush()
    }
}
