// swift-tools-version: 6.0
import PackageDescription

// Layers, bottom to top: formats (bytes on disk, no BLAS) → model (configs, names,
// tokenizers) → compute (kernels, streaming executor) → surgery → emit (writers,
// manifest) → the CLI, a thin shell over the library.
let package = Package(
    name: "ckpt-surgeon",
    products: [
        .executable(name: "ckpt-surgeon", targets: ["CkptSurgeonCLI"]),
        .library(name: "SurgeonFormats", targets: ["SurgeonFormats"]),
        .library(name: "SurgeonModel", targets: ["SurgeonModel"]),
        .library(name: "SurgeonCompute", targets: ["SurgeonCompute"]),
        .library(name: "SurgeonSurgery", targets: ["SurgeonSurgery"]),
        .library(name: "SurgeonEmit", targets: ["SurgeonEmit"]),
        .library(name: "SurgeonEval", targets: ["SurgeonEval"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CXXHash", pkgConfig: "libxxhash",
                       providers: [.apt(["libxxhash-dev"])]),

        .target(name: "CPlatform"),
        // exp-heavy loops compiled per instruction set (see VectorMath.swift).
        .target(name: "CVectorMath"),

        .target(name: "SurgeonFormats", dependencies: ["CXXHash", "CPlatform"]),
        .target(name: "SurgeonModel", dependencies: ["SurgeonFormats", "CPlatform"]),
        .target(name: "SurgeonCompute", dependencies: ["SurgeonFormats", "SurgeonModel", "COpenBLAS", "CZstd", "CPlatform", "CVectorMath"]),
        .target(name: "SurgeonSurgery", dependencies: ["SurgeonFormats", "SurgeonModel", "SurgeonCompute"],
                resources: [.copy("Resources/wiki.valid.raw"), .copy("Resources/LICENSE-wikitext.md"),
                            .copy("Resources/c4-calibration.txt"), .copy("Resources/LICENSE-c4.md")]),
        // Emit reads what surgery recorded (SurgeonModel's records) and never links BLAS.
        .target(name: "SurgeonEmit", dependencies: ["SurgeonFormats", "SurgeonModel"]),
        .target(name: "SurgeonEval", dependencies: ["SurgeonModel", "SurgeonCompute", "CZstd"],
                resources: [.copy("Resources/data"), .copy("Resources/LICENSES.md")]),
        .executableTarget(
            name: "CkptSurgeonCLI",
            dependencies: [
                "SurgeonFormats", "SurgeonModel", "SurgeonCompute", "SurgeonSurgery", "SurgeonEmit", "SurgeonEval",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),

        .executableTarget(name: "SurgeonBench", dependencies: ["SurgeonCompute", "SurgeonModel"]),

        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "SurgeonFormatsTests", dependencies: ["SurgeonFormats", "TestSupport"]),
        .testTarget(name: "SurgeonModelTests", dependencies: ["SurgeonModel", "TestSupport"]),
        .testTarget(name: "SurgeonComputeTests", dependencies: ["SurgeonCompute", "TestSupport"]),
        .testTarget(name: "SurgeonSurgeryTests", dependencies: ["SurgeonSurgery"]),
        .testTarget(name: "SurgeonEmitTests", dependencies: ["SurgeonEmit", "TestSupport"]),
    ]
)
