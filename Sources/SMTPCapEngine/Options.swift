import PacketDecoding
import PcapSource
import Reporting
import TCPReassembly

/// Everything the command line decides.
public struct EngineOptions: Sendable {
    /// `records`: nothing is printed; the sessions are kept for the caller (`compare`).
    /// `eve`: Suricata's EVE JSON lines.
    public enum Format: Sendable { case text, json, eve, records }

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
    /// IP fragment reassembly's caps, part of the memory budget.
    public var defragment = DefragmentLimits.forMemory(mebibytes: 256)
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
            defragment = DefragmentLimits.forMemory(mebibytes: memoryBudgetMiB)
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
    /// Keep and print envelope addresses (false: `--no-addresses`).
    public var recordAddresses = true
    /// Write an RFC 8460 TLS report over the capture to this file.
    public var tlsReport: TLSReportSettings?
    /// Write a pcap and a text report of each session with findings into this directory.
    public var evidenceDirectory: String?

    public init() {}

    public var defaultFilter: String {
        ports.map { "tcp port \($0)" }.joined(separator: " or ")
    }
}
