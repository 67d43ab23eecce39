import PcapSource
import Reporting

/// The outputs beside the report: `--tls-report` and `--evidence`.
extension Engine {
    /// Opens the TLS report's file and the evidence directory before the capture starts, so a
    /// bad path fails at once (and a live capture can still write them after dropping
    /// privileges).
    func openOutputs() throws(PcapError) {
        if let settings = options.tlsReport {
            do throws(SystemError) {
                tlsReportFile = try System.createFile(settings.path, exclusive: false)
            } catch {
                throw PcapError(.unreadable, error.message)
            }
        }
        if let directory = options.evidenceDirectory {
            do throws(SystemError) {
                try System.prepareDirectory(directory, owner: options.interface != nil ? options.dropToUser : nil)
            } catch {
                throw PcapError(.unreadable, error.message)
            }
            if options.interface != nil && options.writeFile == nil {
                spoolPath = "\(directory)/.smtpcap-spool-\(System.processID).pcap"
            }
        }
    }

    /// Writes the TLS report and the evidence of the sessions with findings.
    func writeOutputs() {
        if let settings = options.tlsReport {
            let report = printer.tlsReport
            if !System.write(tlsReportFile, Array(report.json(settings).utf8)) {
                warn("cannot write the TLS report to \(settings.path)")
            }
            if report.inconclusive > 0 {
                warn("TLS report: \(report.inconclusive) inconclusive session(s) are in neither count")
            }
        }
        if let directory = options.evidenceDirectory {
            let sources = options.interface != nil ? [options.writeFile ?? spoolPath].compactMap { $0 } : options.files
            let writer = EvidenceWriter(directory: directory, warn: { [self] in warn($0) })
            let written = writer.write(printer.evidence, files: sources)
            if printer.evidenceNotKept > 0 {
                warn("evidence: \(printer.evidenceNotKept) session(s) with findings past the first \(EvidenceSession.maxSessions) were not written")
            }
            errors.write("smtpcap: evidence of \(written) session(s) with findings written to \(directory)\n")
        }
    }
}
