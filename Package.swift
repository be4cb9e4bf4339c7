// swift-tools-version:5.9
// csslm: contrastive semi-supervised fine-tuning (CSS-LM) of BERT-family encoders on CPU,
// data-parallel over MPI. See README.md and docs/design.md#layout for the layout.
import PackageDescription

// Kernels need release optimisation without overflow checks to vectorize; the CPU target
// (-target-cpu native) is passed by scripts/ so a plain `swift build` stays portable.
let kernelSettings: [SwiftSetting] = [
    .unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release)),
]

let package = Package(
    name: "csslm",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "CSSLM", targets: ["CSSLM"]),
        .executable(name: "csslm", targets: ["csslm"]),
        .executable(name: "csslm-bench", targets: ["csslm-bench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),  // LogHandler.log(event:)
    ],
    targets: [
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CMPI", path: "CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        // cpuid, and the OpenBLAS core check that runs before main in every program linking CSSLM.
        .target(name: "CCPU", path: "Sources/CCPU"),
        .target(name: "CSSLM",
                dependencies: ["CBLAS", "CMPI", "CCPU", .product(name: "Logging", package: "swift-log")],
                swiftSettings: kernelSettings),
        .executableTarget(name: "csslm",
                          dependencies: ["CSSLM", .product(name: "ArgumentParser", package: "swift-argument-parser"),
                                         .product(name: "Logging", package: "swift-log")],
                          swiftSettings: kernelSettings),
        .executableTarget(name: "csslm-bench",
                          dependencies: ["CSSLM", "CBLAS"],
                          swiftSettings: kernelSettings),
        // Multi-rank test scenarios, launched under mpirun by Tests/CSSLMTests/DistributedTests.swift.
        .executableTarget(name: "csslm-mpitest",
                          dependencies: ["CSSLM", "CBLAS"],
                          swiftSettings: kernelSettings),
        .testTarget(name: "CSSLMTests", dependencies: ["CSSLM", "CBLAS", .product(name: "Logging", package: "swift-log")],
                    resources: [.copy("Fixtures")],
                    swiftSettings: kernelSettings),
    ]
)
