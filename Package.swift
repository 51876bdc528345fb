// swift-tools-version: 6.0
import PackageDescription

/// The capture hot path mutates per-session state held by classes; with dynamic exclusivity
/// checks on, those accesses cost about a tenth of the run time. Release builds turn them off;
/// debug builds (and so the test suite) keep them on.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "smtptape",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "smtptape", targets: ["smtptape"]),
        .library(name: "SMTPCore", targets: ["SMTPCore"]),
        .library(name: "SMTPCapture", targets: ["SMTPCapture"]),
        .library(name: "SMTPTranscript", targets: ["SMTPTranscript"]),
        .library(name: "SMTPScenario", targets: ["SMTPScenario"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
    ],
    targets: [
        // The SMTP grammar: commands, replies, capabilities, dot-stuffing, limits and the
        // dialogue state machine. No I/O; shared by capture, transcripts and (later) replay and proxy.
        .target(name: "SMTPCore", dependencies: ["CSMTPScan"], swiftSettings: hotPathSettings),
        // memmem, which Swift's Glibc module does not expose.
        .target(name: "CSMTPScan"),
        // libpcap, kept in one leaf target.
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // Reading captures: link/IP/TCP decoding, TCP reassembly, SMTP dialogue extraction.
        .target(name: "SMTPCapture", dependencies: ["SMTPCore", "CPcap"], swiftSettings: hotPathSettings),
        // Rendering dialogues: readable text, JSON Lines, .eml files.
        .target(name: "SMTPTranscript", dependencies: ["SMTPCore"], swiftSettings: hotPathSettings),
        // Scenarios: the model, its YAML format (reader with positions, canonical writer), matchers,
        // and the bridges from captured dialogues and to transcripts.
        .target(name: "SMTPScenario", dependencies: ["SMTPCore", .product(name: "Yams", package: "Yams")]),
        .executableTarget(
            name: "smtptape",
            dependencies: [
                "SMTPCore", "SMTPCapture", "SMTPTranscript", "SMTPScenario",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "SMTPCoreTests", dependencies: ["SMTPCore"]),
        .testTarget(name: "SMTPCaptureTests", dependencies: ["SMTPCapture", "SMTPCore", "SMTPTranscript"], exclude: ["Golden"]),
        .testTarget(name: "SMTPTranscriptTests", dependencies: ["SMTPTranscript", "SMTPCore"]),
        .testTarget(name: "SMTPScenarioTests", dependencies: ["SMTPScenario", "SMTPCore", "SMTPCapture", "SMTPTranscript"], exclude: ["Broken"]),
    ],
    swiftLanguageModes: [.v6]
)
