// swift-tools-version:6.0
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
]
/// The engine's layers are separate modules; the per-packet path crosses them (the flow table
/// is generic over the SMTP machine). Cross-module optimization lets the compiler specialize
/// and inline across them in release builds. Release builds also drop the dynamic exclusivity
/// checks (the static ones stay; debug builds and the test suite keep both): they cost a
/// runtime call per access to a class's stored property on the per-packet path.
let hotPath: [SwiftSetting] = strict + [
    .unsafeFlags(["-cross-module-optimization", "-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "smtpcap",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "smtpcap", targets: ["smtpcap"]),
        .library(name: "SMTPCapEngine", targets: ["SMTPCapEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // libpcap, found with pkg-config (Debian: libpcap-dev).
        .systemLibrary(name: "CPcap", pkgConfig: "libpcap", providers: [.apt(["libpcap-dev"])]),
        // Turns SIGBUS from a mapped capture file that shrank into a one-line error.
        .target(name: "CSignalGuard"),
        // Layer 1: capture. The only target that imports CPcap.
        .target(name: "PcapSource", dependencies: ["CPcap", "CSignalGuard"], swiftSettings: hotPath),
        // Layer 2: link, IP and TCP decoding of one frame. Pure.
        .target(name: "PacketDecoding", swiftSettings: hotPath),
        // Layer 3: TCP reassembly into ordered bytes and explicit gaps per direction.
        .target(name: "TCPReassembly", dependencies: ["PacketDecoding"], swiftSettings: hotPath),
        // Layer 4-6: SMTP state machine, TLS handshake reader, findings. Pure: fed byte chunks.
        .target(
            name: "SMTPAnalysis",
            dependencies: [
                "TCPReassembly",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
            ],
            swiftSettings: hotPath),
        // Layer 7: text, JSON lines and transcript output. The only layer that formats.
        .target(name: "Reporting", dependencies: ["SMTPAnalysis"], swiftSettings: hotPath),
        // Wiring: capture -> decode -> reassembly -> analysis -> report.
        .target(
            name: "SMTPCapEngine",
            dependencies: ["PcapSource", "PacketDecoding", "TCPReassembly", "SMTPAnalysis", "Reporting"],
            swiftSettings: hotPath),
        .executableTarget(
            name: "smtpcap",
            dependencies: ["SMTPCapEngine", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict),
        // Fuzz harnesses, one per parser layer (`make fuzz-smoke`). Built normally it replays
        // files; built with -sanitize=fuzzer -DFUZZING, libFuzzer drives it.
        .executableTarget(
            name: "smtpcap-fuzz",
            dependencies: ["SMTPCapEngine", "PcapSource", "PacketDecoding", "TCPReassembly", "SMTPAnalysis", "Reporting"],
            swiftSettings: strict + [.unsafeFlags(["-parse-as-library"])]),
        .testTarget(name: "PcapSourceTests", dependencies: ["PcapSource"]),
        .testTarget(name: "PacketDecodingTests", dependencies: ["PacketDecoding"]),
        .testTarget(name: "TCPReassemblyTests", dependencies: ["TCPReassembly"]),
        .testTarget(name: "SMTPAnalysisTests", dependencies: ["SMTPAnalysis", "Reporting"]),
        .testTarget(name: "EndToEndTests", dependencies: ["SMTPCapEngine"]),
    ],
    swiftLanguageModes: [.v6]
)
