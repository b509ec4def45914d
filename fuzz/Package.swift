// swift-tools-version: 6.0
import PackageDescription

// libFuzzer targets, one per parser of untrusted input. A package of their own, so that
// the main build never needs -sanitize=fuzzer. Each main hands its input function to
// libFuzzer's driver (SwiftPM names executables' entry points itself, so libFuzzer's own
// main cannot be used). Built and run by bench/fuzz.sh into ../.build-fuzz.
let fuzzTarget = { (name: String, products: [String]) -> Target in
    .executableTarget(name: name, dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: "ckpt-surgeon") },
                      path: "Sources/\(name)")
}

let package = Package(
    name: "ckpt-surgeon-fuzz",
    dependencies: [.package(name: "ckpt-surgeon", path: "..")],
    targets: [
        .target(name: "CFuzzDriver", path: "Sources/CFuzzDriver"),
        .target(name: "FuzzSupport", dependencies: ["CFuzzDriver"], path: "Sources/FuzzSupport"),
        fuzzTarget("fuzz-safetensors", ["SurgeonFormats"]),
        fuzzTarget("fuzz-gguf", ["SurgeonFormats", "SurgeonModel"]),
        fuzzTarget("fuzz-tokenizer", ["SurgeonFormats", "SurgeonModel"]),
        fuzzTarget("fuzz-config", ["SurgeonFormats", "SurgeonModel"]),
        fuzzTarget("fuzz-manifest", ["SurgeonEmit"]),
    ]
)
