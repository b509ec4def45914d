import ArgumentParser
import Foundation
import SurgeonFormats
import SurgeonModel

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a checkpoint's format, architecture, tensors, tokenizer and integrity.",
        discussion: """
        Prints the hyperparameters, parameter count, bytes per dtype, one row per tensor \
        (HF name, dtype, shape, bytes), a tokenizer summary, and an integrity verdict: every \
        tensor the architecture needs is present with the shape its config implies. Exits \
        non-zero when the verdict fails.

        Examples:
          ckpt-surgeon inspect SmolLM2-135M-Instruct.Q4_1.gguf
          ckpt-surgeon inspect ./smollm2-hf --json --hashes | jq '.tensors[0]'
          ckpt-surgeon inspect --raw some-file.gguf
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "config.json to use with a bare .safetensors file.")
    var config: String?

    @Flag(help: "Print the report as JSON on stdout.")
    var json = false

    @Flag(help: "Add the XXH3-64 of every tensor's stored bytes (reads the whole file).")
    var hashes = false

    @Flag(help: "List the file's tensors and metadata as stored, without reading it as a model.")
    var raw = false

    func run() throws {
        if raw {
            let report = RawInspection(try TensorContainer(path: model), hashes: hashes)
            if json { try printJSON(report) } else { print(report.text, terminator: "") }
            return
        }
        let checkpoint = try Checkpoint.open(model, configPath: config)
        let report = try InspectionReport(checkpoint, hashes: hashes)
        if json {
            try printJSON(report)
        } else {
            print(InspectionText.render(report), terminator: "")
        }
        if let problem = report.integrity.problems.first {
            let more = report.integrity.problems.count > 1 ? " (and \(report.integrity.problems.count - 1) more)" : ""
            throw FormatError(.inconsistent, path: checkpoint.path, "integrity check failed: \(problem)\(more)")
        }
    }
}

/// The text form of an inspection report.
enum InspectionText {
    static func render(_ r: InspectionReport) -> String {
        let c = r.config
        var out = """
        \(r.path)
          format        \(r.format)
          architecture  \(r.family) (\(c.architectures.first ?? c.modelType))
          layers        \(c.numHiddenLayers)
          hidden        \(c.hiddenSize)   ffn \(c.intermediateSize)   vocab \(c.vocabSize)
          attention     \(c.numAttentionHeads) heads, \(c.numKeyValueHeads) KV heads, head_dim \(c.headDim)
          rope          theta \(formatNumber(c.ropeTheta))\(c.ropeScaling.map { ", scaling \($0.ropeType)" } ?? "")   rms_norm_eps \(formatNumber(c.rmsNormEps))
          context       \(c.maxPositionEmbeddings)   tied embeddings \(c.tieWordEmbeddings ? "yes" : "no")
          parameters    \(r.parameterCount) (\(String(format: "%.1f", Double(r.parameterCount) / 1e6)) M)
          bytes         \(r.bytesByDtype.sorted { $0.key < $1.key }.map { "\($0.key) \(byteText($0.value))" }.joined(separator: ", "))

        """
        if let t = r.tokenizer {
            let special = t.specialTokens.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            out += "  tokenizer     \(t.kind)\(t.preTokenizer.map { ", pre \($0)" } ?? ""), \(t.vocabSize) tokens, \(t.merges) merges\n"
            out += "                \(special)\(t.hasChatTemplate ? ", chat template" : "")\n"
        } else {
            out += "  tokenizer     none found\n"
        }
        out += "\n" + tensorTable(r.tensors)
        out += "\nintegrity: " + (r.integrity.ok ? "OK, all \(r.tensors.count) tensors present with the expected shapes\n"
                                                 : "FAILED\n" + r.integrity.problems.map { "  - \($0)\n" }.joined())
        if !r.integrity.unexpectedTensors.isEmpty {
            out += "  not used by the architecture: \(r.integrity.unexpectedTensors.joined(separator: ", "))\n"
        }
        return out
    }

    static func tensorTable(_ tensors: [InspectionReport.Tensor]) -> String {
        let nameWidth = max(4, tensors.map(\.name.count).max() ?? 0)
        var out = pad("tensor", nameWidth) + "  dtype  " + pad("shape", 14) + "  bytes\n"
        var layer: Int? = -1
        for t in tensors {
            if t.layer != layer, let l = t.layer { out += "  -- layer \(l)\n" }
            layer = t.layer
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            out += pad(t.name, nameWidth) + "  " + pad(t.dtype, 5) + "  " + pad(shape, 14) + "  " + byteText(t.bytes)
                + (t.xxh3.map { "  xxh3 \($0)" } ?? "") + "\n"
        }
        return out
    }
}
