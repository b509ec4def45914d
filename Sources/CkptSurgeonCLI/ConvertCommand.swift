import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonFormats
import SurgeonModel

struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert between a Hugging Face folder and GGUF, or change dtypes.",
        discussion: """
        Tensors stream one at a time from the memory-mapped input: a tensor whose dtype does \
        not change is copied byte for byte (copy_file_range); others are decoded to f32 and \
        re-encoded a chunk of rows at a time. LLaMA q/k rows are permuted for GGUF and back.

        --to safetensors writes an HF folder: config.json, model.safetensors (or shards with \
        model.safetensors.index.json above --max-shard-size), and the tokenizer files \
        (copied, or rebuilt from GGUF tokenizer metadata). --to gguf writes one GGUF v3 file \
        with hyperparameters and tokenizer metadata for llama.cpp.

        --dtype keep leaves every tensor in its type where the output format can hold it \
        (ggml block types become f32 in safetensors). In GGUF, 1-D tensors are always F32, and \
        q8_0 applies to matrices whose rows are whole 32-element blocks, as in llama.cpp.

        Examples:
          ckpt-surgeon convert SmolLM2-135M-Instruct.Q4_1.gguf -o smollm2-hf
          ckpt-surgeon convert smollm2-hf -o smollm2-bf16 --dtype bf16 --max-shard-size 100MB
          ckpt-surgeon convert smollm2-hf -o smollm2.q8_0.gguf --dtype q8_0
          ckpt-surgeon convert --raw quantized.gguf -o decoded.safetensors --dtype f32
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(name: .shortAndLong, help: "Output folder (safetensors) or .gguf file.")
    var output: String

    @Option(help: "Output format: safetensors or gguf (default: gguf when -o ends in .gguf).")
    var to: OutputFormat?

    @Option(help: "Tensor dtype: keep, f32, f16, bf16, q8_0 (GGUF only).")
    var dtype: DTypeChoice = .keep

    @Option(help: "Largest safetensors shard, e.g. 500MB, 2GB, 4GiB.")
    var maxShardSize: String = "5GB"

    @Option(help: "config.json to use with a bare .safetensors file.")
    var config: String?

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    @Flag(help: "Treat the input as plain tensors: same names and metadata, no model conventions; writes one file.")
    var raw = false

    func validate() throws {
        guard ByteSize.parse(maxShardSize) != nil else {
            throw ValidationError("--max-shard-size '\(maxShardSize)' is not a size like 500MB or 2GB")
        }
    }

    func run() throws {
        let format = to ?? (output.hasSuffix(".gguf") ? .gguf : .safetensors)
        if raw {
            let bytes = try RawConverter.convert(try TensorContainer(path: model), to: output, format: format,
                                                 dtype: dtype, replace: force)
            print("wrote \(output) (\(format.rawValue), raw): \(byteText(bytes))")
            return
        }
        let checkpoint = try Checkpoint.open(model, configPath: config)
        let bar = ProgressBar(label: "convert")
        let summary = try Converter.convert(checkpoint, to: output, format: format, dtype: dtype,
                                            maxShardBytes: ByteSize.parse(maxShardSize)!, replace: force,
                                            progress: bar.update)
        bar.finish()
        try printConversionSummary(summary, json: json)
    }
}

/// The one-line (or JSON) summary `convert` and `export` print.
func printConversionSummary(_ summary: Converter.Summary, json: Bool) throws {
    let types = summary.dtypeCounts.sorted { $0.key.rawValue < $1.key.rawValue }
    let format = summary.format.rawValue
    if json {
        try printJSON(ConvertSummaryJSON(output: summary.outputPath, format: format, tensors: summary.tensorCount,
                                          bytes: summary.bytesWritten,
                                          dtypes: Dictionary(uniqueKeysWithValues: types.map { ($0.key.ggmlName, $0.value) })))
    } else {
        let typeText = types.map { "\($0.value) \($0.key.ggmlName)" }.joined(separator: ", ")
        print("wrote \(summary.outputPath) (\(format)): \(summary.tensorCount) tensors, \(byteText(summary.bytesWritten)) [\(typeText)]")
    }
}

struct ConvertSummaryJSON: Encodable {
    let output: String, format: String, tensors: Int, bytes: Int, dtypes: [String: Int]
}

extension OutputFormat: ExpressibleByArgument {}
extension DTypeChoice: ExpressibleByArgument {}
