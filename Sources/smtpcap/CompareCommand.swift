import ArgumentParser
import SMTPCapEngine
#if canImport(Glibc)
import Glibc
#endif

/// `smtpcap compare A B`.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two captures of the same SMTP traffic taken at two points (the sender and the receiving server, or both sides of a firewall).",
        discussion: """
        Pairs the sessions of A and B by time, server, EHLO name, commands and message sizes \
        (not by addresses and ports: NAT and proxies change them), and prints every \
        difference of each pair: banner, EHLO reply, command and reply lines changed, \
        deleted or added on the path; TLS on one side only; certificates; the client address \
        as translated; the hop distance. Then the sessions that have no partner.

        Give the sender's capture first when the hop counts cannot tell the sides apart.

        EXIT STATUS
          0  the captures agree
          1  differences or unpaired sessions
          2  error

        EXAMPLE
          smtpcap compare sender.pcap mx.pcap
        """)

    @Argument(help: ArgumentHelp("The first capture (the sender's side).", valueName: "A"))
    var a: String

    @Argument(help: ArgumentHelp("The second capture (the receiving side).", valueName: "B"))
    var b: String

    @Flag(name: .long, help: "Print JSON lines: one object per pair or unpaired session, then a summary.")
    var json = false

    @Option(name: .long, help: ArgumentHelp("SMTP server ports (comma-separated).", valueName: "ports"))
    var ports: String = "25,587,465,2525"

    @Option(name: .long, help: ArgumentHelp("Ports whose sessions are TLS from the first byte.", valueName: "ports"))
    var implicitTlsPorts: String = "465"

    @Option(name: .long, help: ArgumentHelp("Colour: auto, always or never.", valueName: "when"))
    var color: String = "auto"

    @Option(name: .long, help: ArgumentHelp("Keep peak memory of each analysis under about this many MiB.", valueName: "MiB"))
    var maxMemory: Int = 256

    func validate() throws {
        if !["auto", "always", "never"].contains(color) { throw ValidationError("--color takes auto, always or never") }
        if maxMemory < 48 || maxMemory > 1 << 20 { throw ValidationError("--max-memory must be between 48 and 1048576 (MiB)") }
        _ = try SMTPCapCommand.parsePorts(ports, option: "--ports")
        _ = try SMTPCapCommand.parsePorts(implicitTlsPorts, option: "--implicit-tls-ports")
    }

    func options() throws -> EngineOptions {
        var o = EngineOptions()
        o.ports = try SMTPCapCommand.parsePorts(ports, option: "--ports")
        o.implicitTLSPorts = Set(try SMTPCapCommand.parsePorts(implicitTlsPorts, option: "--implicit-tls-ports"))
        o.memoryBudgetMiB = maxMemory
        return o
    }

    var useColor: Bool { color == "always" || (color == "auto" && isatty(1) == 1 && !json) }
}
