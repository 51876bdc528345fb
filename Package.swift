// swift-tools-version: 6.0
import PackageDescription

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
        .target(name: "SMTPCore", dependencies: ["CSMTPScan"]),
        // Byte kernels in C: the SSE2 scan for "\n." in message data, and base64.
        .target(name: "CSMTPScan"),
        // libpcap, kept in one leaf target.
        .systemLibrary(
            name: "CPcap",
            pkgConfig: "libpcap",
            providers: [.apt(["libpcap-dev"]), .brew(["libpcap"])]
        ),
        // Reading captures: link/IP/TCP decoding, TCP reassembly, SMTP dialogue extraction.
        .target(name: "SMTPCapture", dependencies: ["SMTPCore", "CPcap"]),
        // Rendering dialogues: readable text, JSON Lines, .eml files.
        .target(name: "SMTPTranscript", dependencies: ["SMTPCore"]),
        // Scenarios: the model, its YAML format (reader with positions, canonical writer), matchers,
        // and the bridges from captured dialogues and to transcripts.
        .target(name: "SMTPScenario", dependencies: ["SMTPCore", "CSMTPScan", .product(name: "Yams", package: "Yams")]),
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
