// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
/// The engine's layers are separate modules; the per-packet path crosses them (the flow table
/// is generic over the SMTP machine). Cross-module optimization lets the compiler specialize
/// and inline across them in release builds: without it the flow table runs unspecialized
/// (BENCHMARKS.md). It is an unsafe flag, so the package offers no library product (SwiftPM
/// refuses such a product as a versioned dependency); nothing outside the executable uses one.
let hotPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-cross-module-optimization"], .when(configuration: .release)),
]

let package = Package(
    name: "smtpcap",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "smtpcap", targets: ["smtpcap"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
    ],
    targets: [
        // libpcap, found with pkg-config (Debian: libpcap-dev).
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        // Reads gzip-compressed capture files (`-r packet.log.gz`) through zlib (Debian:
        // zlib1g-dev) as a stdio stream libpcap can read.
        .target(name: "CGzipFile", linkerSettings: [.linkedLibrary("z")]),
        // Turns SIGBUS from a mapped capture file that shrank into a one-line error.
        .target(name: "CSignalGuard"),
        // `probe`'s system calls, resolver and OpenSSL (Debian: libssl-dev) behind a small C
        // interface: sockets with timeouts, the TLS client, res_query, getaddrinfo.
        .target(name: "CProbeSupport", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),
        // Active side of `probe`: resolves targets as an MTA does and talks SMTP to each address
        // (never sending mail). Its packets are captured and analyzed like any others.
        .target(
            name: "Probe",
            dependencies: ["CProbeSupport", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict),
        // The shared vocabulary every layer speaks: addresses, endpoints, time stamps,
        // directions, chunk metadata, anomaly and finding codes; and the byte-scanning kernel.
        .target(name: "SMTPCapCore", swiftSettings: hotPath),
        // Layer 1: capture. The only target that imports CPcap.
        .target(name: "PcapSource", dependencies: ["CPcap", "CSignalGuard", "CGzipFile"], swiftSettings: hotPath),
        // Layer 2: link, IP and TCP decoding of one frame. Pure.
        .target(name: "PacketDecoding", dependencies: ["SMTPCapCore"], swiftSettings: hotPath),
        // Layer 3: TCP reassembly into ordered bytes and explicit gaps per direction.
        .target(name: "TCPReassembly", dependencies: ["SMTPCapCore", "PacketDecoding"], swiftSettings: hotPath),
        // Layer 5: the TLS handshake reader and X.509 certificate facts. Pure: fed byte chunks.
        .target(
            name: "TLSHandshake",
            dependencies: [
                "SMTPCapCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: hotPath),
        // Layer 4: the SMTP state machine. Pure: fed ordered bytes, gaps and closes; hands
        // the bytes after STARTTLS to the TLS reader. No Foundation.
        .target(name: "SMTPMachine", dependencies: ["SMTPCapCore", "TCPReassembly", "TLSHandshake"], swiftSettings: hotPath),
        // Layer 6: findings and verdicts per session, and the cross-session summary.
        // Provider knowledge (`providers.json`: which large providers always offer STARTTLS and
        // how their servers are recognised, with sources) is data, built into the binary.
        .target(
            name: "Findings", dependencies: ["SMTPCapCore", "TLSHandshake", "SMTPMachine"],
            resources: [.embedInCode("providers.json")], swiftSettings: hotPath),
        // Layer 6b: `compare`: pairs the sessions of two captures of the same traffic and lists
        // what differs between them.
        .target(name: "Comparison", dependencies: ["SMTPCapCore", "TLSHandshake", "SMTPMachine", "Findings"], swiftSettings: strict),
        // Layer 7: text, JSON lines and transcript output. The only layer that formats.
        .target(
            name: "Reporting",
            dependencies: ["SMTPCapCore", "TCPReassembly", "TLSHandshake", "SMTPMachine", "Findings", "Comparison"],
            swiftSettings: hotPath),
        // Wiring: capture -> decode -> reassembly -> SMTP machine -> findings -> report.
        .target(
            name: "SMTPCapEngine",
            dependencies: ["SMTPCapCore", "PcapSource", "PacketDecoding", "TCPReassembly", "TLSHandshake", "SMTPMachine", "Findings",
                           "Comparison", "Probe", "Reporting"],
            swiftSettings: hotPath),
        .executableTarget(
            name: "smtpcap",
            dependencies: ["SMTPCapEngine", "PcapSource", "Reporting", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        // Fuzz harnesses, one per parser layer (`make fuzz-smoke`). Built normally it replays
        // files; built with -sanitize=fuzzer -DFUZZING, libFuzzer drives it.
        .executableTarget(
            name: "smtpcap-fuzz",
            dependencies: ["SMTPCapCore", "SMTPCapEngine", "PcapSource", "CGzipFile", "PacketDecoding", "TCPReassembly", "TLSHandshake",
                           "SMTPMachine", "Findings", "Reporting", "Probe"],
            swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]),
        // Shared by the test targets: seeded generator, split feeding, capture runners.
        .target(name: "SMTPCapTestSupport", path: "Tests/SMTPCapTestSupport", swiftSettings: strict),
        .testTarget(name: "PcapSourceTests", dependencies: ["PcapSource", "SMTPCapTestSupport"]),
        .testTarget(name: "PacketDecodingTests", dependencies: ["SMTPCapCore", "PacketDecoding", "SMTPCapTestSupport"]),
        .testTarget(name: "TCPReassemblyTests", dependencies: ["SMTPCapCore", "PacketDecoding", "TCPReassembly", "SMTPCapTestSupport"]),
        .testTarget(
            name: "SMTPMachineTests",
            dependencies: ["SMTPCapCore", "TCPReassembly", "TLSHandshake", "SMTPMachine", "Findings", "Comparison", "Reporting",
                           "SMTPCapTestSupport"]),
        .testTarget(name: "EndToEndTests", dependencies: ["SMTPCapTestSupport"]),
        .testTarget(name: "ProbeUnitTests", dependencies: ["Probe", "Findings", "SMTPCapCore"]),
    ],
    swiftLanguageModes: [.v6]
)
