// swift-tools-version: 5.9
// Pure, framework-free logic of the QuantSR iOS demo (no UIKit, Core ML or ExecuTorch): pixel conversion,
// tile planning and stitching, the models.json manifest, latency statistics and benchmark rows.
// `swift test` (macOS or Linux) runs the XCTest suite against the shared vectors in ../../tests/vectors.
import PackageDescription

let package = Package(
    name: "QuantSRCore",
    platforms: [.iOS(.v17), .macOS(.v13)],
    products: [
        .library(name: "QuantSRCore", targets: ["QuantSRCore"]),
    ],
    targets: [
        .target(name: "QuantSRCore"),
        .testTarget(name: "QuantSRCoreTests", dependencies: ["QuantSRCore"]),
    ]
)
