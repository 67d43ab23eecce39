import ArgumentParser
import SMTPCapEngine
#if canImport(Glibc)
import Glibc
#endif

/// `smtpcap probe TARGET...`.
struct ProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe",
        abstract: "Test STARTTLS on every path to a mail domain: connect to each MX address over IPv4 and IPv6, capture the connections and analyze them.",
        discussion: """
        TARGET is a mail domain (its MX hosts in preference order, then their A and AAAA \
        records; without MX, the domain's own addresses), a host name, or a literal IPv4 or \
        IPv6 address. For each address smtpcap reads the banner, sends EHLO, and when STARTTLS \
        is offered issues it, completes TLS (certificates are recorded, not verified, as MTAs \
        do) and sends EHLO again; then QUIT. It never sends mail.

        While it talks it captures its own connections (root or CAP_NET_RAW) and analyzes \
        them as -r would: masking, deleted lines, hops, the TLS agreed and the certificate \
        come from the packets. Without capture privileges it reports what the sockets read \
        and says that wire evidence was unavailable.

        EXIT STATUS
          0  no finding
          1  findings (STARTTLS missing or stripped, TLS failed, paths that differ)
          2  error (a target that does not resolve, nothing reachable, bad arguments)

        EXAMPLES
          sudo smtpcap probe gmail.com
          sudo smtpcap probe example.org -w evidence.pcap
          smtpcap probe -6 mx.example.org
        """)

    @Argument(help: ArgumentHelp("Mail domains, host names or addresses.", valueName: "target"))
    var targets: [String] = []

    @Option(name: .long, help: ArgumentHelp("The port to connect to.", valueName: "port"))
    var port: Int = 25

    @Flag(name: .customShort("4"), help: "IPv4 only.")
    var ipv4Only = false

    @Flag(name: .customShort("6"), help: "IPv6 only.")
    var ipv6Only = false

    @Option(name: .long, help: ArgumentHelp("The name to send in EHLO (default: this host's fully qualified name).", valueName: "name"))
    var ehlo: String?

    @Option(name: .long, help: ArgumentHelp("Seconds to wait for a connection, a reply or the TLS handshake (twice this for the greeting).", valueName: "seconds"))
    var timeout: Double = 30

    @Flag(name: .long, help: "Print JSON lines: the sessions, the capture summary, then a probe object.")
    var json = false

    @Option(name: .customShort("w"), help: ArgumentHelp("Keep the captured packets in this pcap file.", valueName: "file"))
    var write: String?

    @Option(name: .shortAndLong, help: ArgumentHelp("Capture on this interface (default: any).", valueName: "iface"))
    var interface: String?

    @Option(name: .long, help: ArgumentHelp("Colour: auto, always or never.", valueName: "when"))
    var color: String = "auto"

    func validate() throws {
        if targets.isEmpty { throw ValidationError("nothing to probe: give a mail domain, a host or an address") }
        if ipv4Only && ipv6Only { throw ValidationError("-4 and -6 cannot be used together") }
        if !(1...65_535).contains(port) { throw ValidationError("--port must be between 1 and 65535") }
        if !(timeout > 0 && timeout <= 600) { throw ValidationError("--timeout must be between 0 and 600 seconds") }
        if !["auto", "always", "never"].contains(color) { throw ValidationError("--color takes auto, always or never") }
        if let ehlo, ehlo.isEmpty || ehlo.count > 255 || !ehlo.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-._:[]".contains($0)) }) {
            throw ValidationError("--ehlo takes a host name or an address literal, not '\(ehlo)'")
        }
        for t in targets where t.isEmpty || t.count > 253 || t.contains(where: { $0.isWhitespace || $0 == "/" }) {
            throw ValidationError("not a domain, host or address: '\(t)'")
        }
    }

    var settings: ProbeRun.Settings {
        var s = ProbeRun.Settings()
        s.targets = targets
        s.port = port
        s.families = ipv4Only ? [4] : ipv6Only ? [6] : [4, 6]
        s.ehloName = ehlo
        s.timeoutSeconds = timeout
        s.json = json
        s.color = color == "always" || (color == "auto" && isatty(1) == 1 && !json)
        s.writeFile = write
        s.interface = interface
        return s
    }
}
