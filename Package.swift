// swift-tools-version: 6.0
import PackageDescription

/// SMTPTAPE_CORE_ONLY=1 leaves out the networking targets (replay, NIO, NIOSSL): the build that
/// scripts/test-asan.sh sanitizes stays small. The smtptape executable then has no `replay`.
let coreOnly = Context.environment["SMTPTAPE_CORE_ONLY"] != nil
let networkTargets: Set<String> = ["SMTPNIO", "SMTPReplay", "SMTPTapeTesting", "SMTPProxy", "SMTPReplayTests"]

let package = Package(
    name: "smtptape",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "smtptape", targets: ["smtptape"]),
        .library(name: "SMTPCore", targets: ["SMTPCore"]),
        .library(name: "SMTPCapture", targets: ["SMTPCapture"]),
        .library(name: "SMTPTranscript", targets: ["SMTPTranscript"]),
        .library(name: "SMTPScenario", targets: ["SMTPScenario"]),
        .library(name: "SMTPTapeTesting", targets: ["SMTPTapeTesting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
    ],
    targets: [
        // The SMTP grammar: commands, replies, capabilities, dot-stuffing, base64, limits and the
        // dialogue state machine. No I/O; shared by capture, transcripts, scenarios, replay and proxy.
        .target(name: "SMTPCore", dependencies: [
            "CSMTPScan",
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        // Byte kernels in C: the vectorised scan for "\n." in message data, and base64.
        .target(name: "CSMTPScan"),
        // Files: reading inputs once (pipes included) while hashing them, and writing into an
        // output folder without following links or replacing files by surprise. The only place
        // with platform-specific code.
        .target(name: "SMTPFiles", dependencies: [
            "CInputStream",
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // A C stream over any input, for libpcap (fopencookie / funopen).
        .target(name: "CInputStream"),
        // libpcap, kept in one leaf target.
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // Reading captures: link/IP/TCP decoding, TCP reassembly, SMTP dialogue extraction.
        .target(name: "SMTPCapture", dependencies: [
            "SMTPCore", "SMTPFiles", "SMTPTLS", "CPcap",
            .product(name: "HeapModule", package: "swift-collections"),
            .product(name: "DequeModule", package: "swift-collections"),
        ]),
        // TLS decryption with a key log (SSLKEYLOGFILE): record layer, TLS 1.2 PRF and TLS 1.3 key
        // schedule, every cipher through swift-crypto. Used by capture reading.
        .target(name: "SMTPTLS", dependencies: [
            "SMTPCore",
            .product(name: "Crypto", package: "swift-crypto"),
            .product(name: "_CryptoExtras", package: "swift-crypto"),
        ]),
        // Rendering dialogues: readable text, JSON Lines, .eml files.
        .target(name: "SMTPTranscript", dependencies: ["SMTPCore", "SMTPFiles", "CSMTPScan"]),
        // Scenarios: the model, its YAML format (reader with positions, canonical writer), matchers,
        // and the bridges from captured dialogues and to transcripts.
        .target(name: "SMTPScenario", dependencies: ["SMTPCore", "SMTPFiles", .product(name: "Yams", package: "Yams")]),
        // The replay session as a channel handler, on NIOCore only (testable on EmbeddedChannel):
        // bytes to a SessionPlayer, its actions carried out on the event loop (delays, STARTTLS,
        // FIN or RST, idle timeout, shutdown).
        .target(name: "SMTPNIO", dependencies: [
            "SMTPCore", "SMTPScenario",
            .product(name: "NIOCore", package: "swift-nio"),
        ]),
        // The replay server: listeners (plain and implicit TLS), certificates made at start, key
        // logs, the accept loop, verdict reports (JSON Lines, JUnit, text).
        .target(name: "SMTPReplay", dependencies: [
            "SMTPCore", "SMTPScenario", "SMTPNIO", "SMTPFiles",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
            .product(name: "X509", package: "swift-certificates"),
            .product(name: "SwiftASN1", package: "swift-asn1"),
            .product(name: "Crypto", package: "swift-crypto"),
        ]),
        // The recording proxy: relays client connections to a real server (STARTTLS intercepted,
        // implicit TLS on either leg) and records each session with the capture's recorder.
        .target(name: "SMTPProxy", dependencies: [
            "SMTPCore", "SMTPScenario", "SMTPTranscript", "SMTPReplay",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "NIOExtras", package: "swift-nio-extras"),
        ]),
        // For users' Swift tests: a replay server in-process on port 0, closure-scoped, with the
        // verdict to assert on. No libpcap.
        .target(name: "SMTPTapeTesting", dependencies: ["SMTPReplay", "SMTPScenario", "SMTPCore"]),
        .executableTarget(
            name: "smtptape",
            dependencies: [
                "SMTPCore", "SMTPFiles", "SMTPCapture", "SMTPTranscript", "SMTPScenario",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore", "CSMTPScan"]),
        .testTarget(name: "SMTPCaptureTests", dependencies: ["SMTPCapture", "SMTPCore", "SMTPFiles", "SMTPTranscript", "SMTPScenario", "SMTPTLS"], exclude: ["Golden"]),
        .testTarget(name: "SMTPTLSTests", dependencies: ["SMTPTLS", "SMTPCore"]),
        .testTarget(name: "SMTPTranscriptTests", dependencies: ["SMTPTranscript", "SMTPCore", "SMTPFiles"]),
        .testTarget(name: "SMTPScenarioTests", dependencies: ["SMTPScenario", "SMTPCore", "SMTPFiles", "SMTPCapture", "SMTPTranscript", "SMTPTLS"], exclude: ["Broken"]),
        .testTarget(name: "SMTPReplayTests", dependencies: [
            "SMTPTapeTesting", "SMTPReplay", "SMTPNIO", "SMTPScenario", "SMTPCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
    ],
    swiftLanguageModes: [.v6]
)

if coreOnly {
    package.targets.removeAll { networkTargets.contains($0.name) }
    package.products.removeAll { $0.name == "SMTPTapeTesting" }
} else if let cli = package.targets.first(where: { $0.name == "smtptape" }) {
    cli.dependencies += ["SMTPReplay", "SMTPProxy"]
}
