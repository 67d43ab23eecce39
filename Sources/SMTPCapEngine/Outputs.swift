import PcapSource
import Reporting

/// The outputs beside the report: `--tls-report` and `--evidence`.
extension Engine {
    /// Opens the TLS report's file, the evidence directory and (live) the spool before the
    /// capture starts, as root where smtpcap will switch users, so that a bad path fails at once
    /// and the files can still be written afterwards.
    func openOutputs() throws(PcapError) {
        if let settings = options.tlsReport {
            if let input = options.files.first(where: { System.sameFile($0, settings.path) }) {
                throw PcapError(.unreadable, "--tls-report \(settings.path) is the input \(input)")
            }
            do throws(SystemError) {
                tlsReportFile = try System.createFile(settings.path, exclusive: false)
            } catch {
                throw PcapError(.unreadable, error.message)
            }
        }
        if let directory = options.evidenceDirectory {
            let owner = options.interface != nil ? System.account(options.dropToUser) : nil
            do throws(SystemError) {
                evidenceDirectory = try System.openDirectory(directory, owner: owner)
                printer.evidenceDirectory = evidenceDirectory
                printer.evidenceOwner = owner
                if options.interface != nil && options.writeFile == nil {
                    let spool = try System.spoolFile(owner: owner)
                    spoolFile = spool.fd
                    spoolPath = spool.path
                }
            } catch {
                throw PcapError(.unreadable, error.message)
            }
        }
    }

    /// After privileges were dropped: the evidence directory must still take new files.
    func checkOutputsAfterDrop(user: String) throws(PcapError) {
        if evidenceDirectory >= 0, !System.canWrite(directory: evidenceDirectory), let directory = options.evidenceDirectory {
            throw PcapError(.other, "cannot write evidence into \(directory) as \(user), the user smtpcap switches to after opening the capture (give a new directory, or -Z root)")
        }
    }

    /// Writes the TLS report and the evidence of the sessions with findings. A requested
    /// output that could not be written makes the run fail (status 2).
    func writeOutputs() {
        if let settings = options.tlsReport {
            let report = printer.tlsReport
            if !System.replaceContents(tlsReportFile, Array(report.json(settings).utf8)) {
                fail("cannot write the TLS report to \(settings.path)")
            }
            if report.inconclusive > 0 {
                warn("TLS report: \(report.inconclusive) inconclusive session(s) are in neither count")
            }
        }
        if let directory = options.evidenceDirectory {
            var units = evidenceUnits
            if options.interface != nil { units = [[options.writeFile ?? spoolPath].compactMap { $0 }] }
            let writer = EvidenceWriter(directory: evidenceDirectory, name: directory, owner: printer.evidenceOwner,
                                        warn: { [self] in warn($0) })
            let written = writer.write(printer.evidence, units: units)
            if printer.evidenceNotKept > 0 {
                warn("evidence: \(printer.evidenceNotKept) session(s) with findings were not written (see the warnings above, or past the first \(EvidenceSession.maxSessions))")
            }
            if written < printer.evidence.count { fail("evidence: \(printer.evidence.count - written) session(s) could not be written") }
            errors.write("smtpcap: evidence of \(written) session(s) with findings written to \(directory)\n")
        }
    }

    func fail(_ message: String) {
        outputFailed = true
        errors.write("smtpcap: \(message)\n")
    }
}
