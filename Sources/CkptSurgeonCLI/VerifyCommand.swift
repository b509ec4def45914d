import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonFormats

struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a surgery output against its manifest.",
        discussion: """
        Recomputes the XXH3-64 of every tensor in the output's files and compares them with \
        surgery.json (inside an output folder, or OUT.surgery.json beside a GGUF). Names every \
        tensor that differs, is missing or is extra; exits 1 if any does.

        Examples:
          ckpt-surgeon verify smollm2-21
          ckpt-surgeon verify merged.gguf
        """)

    @Argument(help: "Output folder or .gguf written by merge or prune.")
    var output: String

    func run() throws {
        let manifestPath = SurgeryManifest.location(of: output)
        guard let data = FilePath.contents(manifestPath) else {
            throw FormatError(.io, path: manifestPath, "no surgery manifest")
        }
        let manifest = try SurgeryManifest.decode(data, path: manifestPath)
        let problems = try manifest.mismatches(of: output)
        if problems.isEmpty {
            print("OK: \(manifest.output.tensors.count) tensors match \(manifestPath)")
            return
        }
        for p in problems { print(p) }
        throw FormatError(.inconsistent, path: output, "\(problems.count) tensor(s) do not match \(manifestPath)")
    }
}
