import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonModel

struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a model (pruned or not) to a GGUF file llama.cpp runs.",
        discussion: """
        The same engine as `convert --to gguf`: {arch}.* hyperparameters from config.json \
        (block_count is the pruned depth), LLaMA q/k rows permuted, the llama3 rope_freqs \
        tensor when config.json asks for llama3 scaling, tokenizer metadata rebuilt from \
        tokenizer.json (model, pre-tokenizer, tokens, types, merges or scores, special ids, \
        chat template) and general.* provenance. When the input is a surgery output, its \
        manifest summary is added as ckpt_surgeon.surgery.* keys (method, source depth, and \
        for each layer the first and last original layer it replaces).

        Examples:
          ckpt-surgeon export smollm2-21 -o smollm2-21.f16.gguf --dtype f16
          ckpt-surgeon export smollm2-21 -o smollm2-21.q8_0.gguf --dtype q8_0
          llama-cli -m smollm2-21.q8_0.gguf -p "The capital of France is"
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(name: .shortAndLong, help: "Output .gguf file.")
    var output: String

    @Option(help: "Tensor dtype: keep, f32, f16, bf16, q8_0.")
    var dtype: DTypeChoice = .keep

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Flag(help: "Print the summary as JSON.")
    var json = false

    func run() throws {
        let checkpoint = try Checkpoint.open(model)
        let bar = ProgressBar(label: "export")
        let summary = try Converter.convert(checkpoint, to: output, format: .gguf, dtype: dtype, replace: force,
                                            progress: bar.update)
        bar.finish()
        try printConversionSummary(summary, json: json)
    }
}
