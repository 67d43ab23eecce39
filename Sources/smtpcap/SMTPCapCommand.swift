import ArgumentParser
import SMTPCapEngine
import PcapSource
import Reporting
#if canImport(Glibc)
import Glibc
#endif

struct SMTPCapCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "smtpcap",
        abstract: "Passive analyzer of SMTP sessions: finds EHLO replies without STARTTLS, mail sent in plaintext, and STARTTLS stripped on the path.",
        usage: """
        smtpcap (-r <file> ... | -i <iface>) [<options>] [<expression> ...]
          smtpcap probe <target> ... [<options>]
          smtpcap compare <A> <B> [<options>]
        """,
        discussion: """
        Reads a capture file (-r) or captures live (-i), reassembles TCP on the SMTP ports \
        (25, 587, 465, 2525 by default) and prints each SMTP session with a verdict: \
        encrypted, plaintext, stripped or inconclusive.

        EXIT STATUS
          0  no finding was reported
          1  at least one finding was reported
          2  error (bad arguments, unreadable input, no permission)

        EXAMPLES
          sudo smtpcap probe example.org        # is STARTTLS there on every path to example.org?
          sudo smtpcap -i eth0 --sessions 1     # during one test send
          smtpcap -r packet.log                 # a tcpdump capture made elsewhere
          smtpcap -r packet.log --json | jq .   # JSON lines for pipelines
          smtpcap -r a.pcap host 203.0.113.25   # a tcpdump filter replaces the default
        """,
        version: smtpcapVersion,
        subcommands: [ProbeCommand.self, CompareCommand.self])

    @Option(name: .shortAndLong, help: ArgumentHelp("Read packets from a pcap or pcapng file, plain or gzip-compressed ('-' for standard input). Repeatable.", valueName: "file"))
    var read: [String] = []

    @Option(name: .shortAndLong, help: ArgumentHelp("Capture live on this interface ('any' for all).", valueName: "iface"))
    var interface: String?

    @Flag(name: [.customShort("D"), .customLong("list-interfaces")], help: "List the interfaces that can be captured on.")
    var listInterfaces = false

    @Option(name: [.customShort("s"), .customLong("snaplen")], help: ArgumentHelp("Bytes to capture per packet.", valueName: "bytes"))
    var snapLength: Int32 = 262_144

    @Flag(name: [.customShort("p"), .customLong("no-promiscuous-mode")], help: "Do not put the interface into promiscuous mode.")
    var noPromiscuous = false

    @Option(name: .long, help: ArgumentHelp("SMTP server ports (comma-separated).", valueName: "ports"))
    var ports: String = "25,587,465,2525"

    @Option(name: .long, help: ArgumentHelp("Ports whose sessions are TLS from the first byte.", valueName: "ports"))
    var implicitTlsPorts: String = "465"

    @Option(name: .customShort("c"), help: ArgumentHelp("Stop after this many packets.", valueName: "count"))
    var count: UInt64?

    @Option(name: .long, help: ArgumentHelp("Stop after this many finished SMTP sessions.", valueName: "n"))
    var sessions: Int?

    @Option(name: .long, help: ArgumentHelp("Stop after this many seconds (live: wall clock; files: capture time).", valueName: "seconds"))
    var duration: Double?

    @Option(name: .customShort("w"), help: ArgumentHelp("Also write every captured packet to this pcap file.", valueName: "file"))
    var write: String?

    @Flag(name: .long, help: "Print JSON lines: one object per session, then a summary object (the same as --format json).")
    var json = false

    @Option(name: .long, help: ArgumentHelp(
        "Output format: text, json (JSON lines), or eve (Suricata EVE JSON lines: smtp, tls and alert events, then stats).",
        valueName: "format"))
    var format: String?

    @Flag(name: .long, help: "Leave envelope addresses (MAIL FROM, RCPT TO) out of every output and the transcript.")
    var noAddresses = false

    @Option(name: .long, help: ArgumentHelp(
        "Also write an RFC 8460 SMTP TLS report (JSON) over the capture to this file: a policy per recipient domain with its session counts and failure details.",
        valueName: "file"))
    var tlsReport: String?

    @Option(name: .long, help: ArgumentHelp("The TLS report's organization-name.", valueName: "name"))
    var organization: String?

    @Option(name: .long, help: ArgumentHelp("The TLS report's contact-info (an address or URL).", valueName: "contact"))
    var contact: String?

    @Option(name: .long, help: ArgumentHelp(
        "Write a pcap of each session with findings (both directions, TLS included) and its text report into this directory, named by session id, verdict and uid. Existing files are never overwritten.",
        valueName: "dir"))
    var evidence: String?

    @Flag(name: .shortAndLong, help: "Add an SMTP transcript per session (credentials and message content replaced by byte counts).")
    var verbose = false

    @Flag(name: .shortAndLong, help: "Print only sessions with findings, and the summary.")
    var quiet = false

    @Option(name: .long, help: ArgumentHelp("Colour: auto, always or never.", valueName: "when"))
    var color: String = "auto"

    @Option(name: .long, help: ArgumentHelp(
        "End connections idle this long (capture time). The default, 660, covers RFC 5321's longest wait (10 minutes for a DATA block and its final reply) with a minute to spare.",
        valueName: "seconds"))
    var idleTimeout: Int64 = 660

    @Option(name: .long, help: ArgumentHelp(
        "Keep peak memory under about this many MiB: sets how many connections are tracked and how many bytes are buffered; what is evicted is counted in the summary.",
        valueName: "MiB"))
    var maxMemory: Int = 256

    @Option(name: .long, help: ArgumentHelp("Connections tracked at once (default: set by --max-memory, 28928 at 256).", valueName: "n"))
    var maxConnections: Int?

    @Option(name: .long, help: ArgumentHelp("Out-of-order bytes held per connection direction. (default: 1048576)", valueName: "bytes"))
    var maxHeldBytes: Int?

    @Option(name: [.customShort("j"), .customLong("jobs")],
            help: ArgumentHelp("Analyze this many -r files at once, one thread each (output as with 1). (default: the number of CPUs)", valueName: "n"))
    var jobs: Int?

    @Flag(name: .long, help: "Read -r files through libpcap's stdio reader instead of mapping them into memory (slower; for a file that is being rewritten while it is read).")
    var noMmap = false

    @Option(name: [.customShort("Z"), .customLong("relinquish-privileges")],
            help: ArgumentHelp("After opening a live capture as root, switch to this user (default nobody; 'root' keeps root).", valueName: "user"))
    var user: String?

    @Argument(help: ArgumentHelp("A tcpdump filter expression; replaces the default port filter.", valueName: "expression"))
    var expression: [String] = []

    func validate() throws {
        if !read.isEmpty && interface != nil { throw ValidationError("-r and -i cannot be used together") }
        if write != nil && read.count > 1 { throw ValidationError("-w takes one input") }
        if snapLength < 64 || snapLength > 262_144 { throw ValidationError("-s must be between 64 and 262144") }
        if let format, !["text", "json", "eve"].contains(format) { throw ValidationError("--format takes text, json or eve") }
        if json, let format, format != "json" { throw ValidationError("--json and --format \(format) cannot be used together") }
        if tlsReport == nil && (organization != nil || contact != nil) {
            throw ValidationError("--organization and --contact go with --tls-report FILE")
        }
        if evidence != nil && read.contains("-") { throw ValidationError("--evidence cannot cut sessions out of standard input: give a file") }
        if evidence != nil && write == "-" { throw ValidationError("--evidence cannot cut sessions out of -w -: give -w a file, or none") }
        if !["auto", "always", "never"].contains(color) { throw ValidationError("--color takes auto, always or never") }
        if let sessions, sessions < 1 { throw ValidationError("--sessions must be at least 1") }
        if let duration, !(duration > 0) { throw ValidationError("--duration must be positive") }
        if idleTimeout < 1 { throw ValidationError("--idle-timeout must be at least 1") }
        if maxMemory < 48 || maxMemory > 1 << 20 { throw ValidationError("--max-memory must be between 48 and 1048576 (MiB)") }
        if let jobs, jobs < 1 || jobs > 256 { throw ValidationError("--jobs must be between 1 and 256") }
        if let maxConnections, maxConnections < 1 { throw ValidationError("--max-connections must be at least 1") }
        if let maxHeldBytes, maxHeldBytes < 0 { throw ValidationError("--max-held-bytes must not be negative") }
        _ = try Self.parsePorts(ports, option: "--ports")
        _ = try Self.parsePorts(implicitTlsPorts, option: "--implicit-tls-ports")
    }

    /// The host's name, for a TLS report without `--organization`.
    static var defaultOrganization: String {
        var name = [CChar](repeating: 0, count: 256)
        guard gethostname(&name, name.count - 1) == 0 else { return "localhost" }
        return String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func parsePorts(_ text: String, option: String) throws -> [UInt16] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        var out: [UInt16] = []
        for part in parts {
            guard let p = UInt16(part.trimmingSpaces), p > 0 else {
                throw ValidationError("\(option) takes comma-separated port numbers, not '\(text)'")
            }
            out.append(p)
        }
        return out
    }

    /// Checked after parsing, not in `validate()`: the argument parser validates the root
    /// command also when a subcommand runs.
    var nothingToRead: Bool { !listInterfaces && read.isEmpty && interface == nil }

    func options() throws -> EngineOptions {
        var o = EngineOptions()
        o.files = read
        o.interface = interface
        o.snapLength = snapLength
        o.promiscuous = !noPromiscuous
        o.filter = expression.isEmpty ? nil : expression.joined(separator: " ")
        o.ports = try Self.parsePorts(ports, option: "--ports")
        o.implicitTLSPorts = Set(try Self.parsePorts(implicitTlsPorts, option: "--implicit-tls-ports"))
        o.packetLimit = count
        o.sessionLimit = sessions
        o.durationSeconds = duration
        o.writeFile = write
        switch json ? "json" : format ?? "text" {
        case "json": o.format = .json
        case "eve": o.format = .eve
        default: o.format = .text
        }
        o.recordAddresses = !noAddresses
        if let tlsReport {
            o.tlsReport = TLSReportSettings(path: tlsReport, organization: organization ?? Self.defaultOrganization,
                                            contact: contact ?? "postmaster@\(Self.defaultOrganization)")
        }
        o.evidenceDirectory = evidence
        o.transcript = verbose
        o.quiet = quiet
        let tty = isatty(1) == 1
        o.color = color == "always" || (color == "auto" && tty && o.format == .text)
        o.progress = isatty(2) == 1
        o.memoryBudgetMiB = maxMemory
        o.idleTimeoutSeconds = idleTimeout
        o.fileReader = noMmap ? .libpcap : .automatic
        o.jobs = jobs ?? max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
        if let maxConnections { o.maxConnections = maxConnections }
        if let maxHeldBytes { o.maxHeldBytesPerDirection = maxHeldBytes }
        if interface != nil {
            o.dropToUser = user ?? (geteuid() == 0 ? "nobody" : nil)
        }
        return o
    }
}

extension Substring {
    var trimmingSpaces: Substring {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return s
    }
}
