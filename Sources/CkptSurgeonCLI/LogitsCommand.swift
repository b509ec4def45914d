import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

struct LogitsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "logits",
        abstract: "Write the logits of one token sequence, to check a model against another implementation.",
        discussion: """
        Runs the ids (or the tokenized prompt) through the model and writes a safetensors \
        file with "ids" (I64 [T]) and "logits" (F32 [T, vocabulary]). --path picks the code \
        path: streaming (the layer-by-layer executor), whole (all layers resident), or cached \
        (one token at a time with a KV cache, as generate runs).

        Examples:
          ckpt-surgeon logits ./smollm2-hf --prompt "Hello there" -o logits.safetensors
          ckpt-surgeon logits tiny-llama --ids "1 5 9 2" -o l.safetensors --path cached
        """)

    enum CodePath: String, ExpressibleByArgument, CaseIterable { case streaming, whole, cached }

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Space-separated token ids.")
    var ids: String?

    @Option(help: "Text to tokenize instead of --ids.")
    var prompt: String?

    @Option(name: .shortAndLong, help: "Output .safetensors file.")
    var output: String

    @Option(help: "Code path: streaming, whole or cached.")
    var path: CodePath = .streaming

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        let tokens: [Int]
        if let ids {
            tokens = try ids.split(separator: " ").map {
                guard let id = Int($0), id >= 0, id < checkpoint.config.vocabSize else {
                    throw InputError("'\($0)' is not a token id below the vocabulary size \(checkpoint.config.vocabSize)")
                }
                return id
            }
        } else if let prompt {
            tokens = try TokenizerLoader.load(for: checkpoint).encodeWithSpecials(prompt)
        } else {
            throw InputError("give --ids or --prompt")
        }
        guard !tokens.isEmpty else { throw InputError("no tokens") }
        let logits: [Float]
        switch path {
        case .streaming:
            let executor = try StreamingExecutor(checkpoint: checkpoint)
            let states = try executor.embed([tokens])
            try executor.run(states, layers: 0..<executor.layerCount)
            logits = try executor.logits(states)[0]
        case .whole:
            logits = try Transformer(checkpoint: checkpoint).logits(tokens)
        case .cached:
            let transformer = try Transformer(checkpoint: checkpoint)
            let cache = transformer.makeCache()
            logits = tokens.flatMap { transformer.step($0, cache: cache) }
        }
        try writeLogits(tokens: tokens, logits: logits, vocabulary: logits.count / tokens.count, to: output)
    }

    private func writeLogits(tokens: [Int], logits: [Float], vocabulary: Int, to path: String) throws {
        let layout = SafetensorsLayout(entries: [
            .init(name: "ids", dtype: .i64, shape: [tokens.count]),
            .init(name: "logits", dtype: .f32, shape: [tokens.count, vocabulary]),
        ], metadata: [])
        let out = try OutputFile(path: path)
        try out.write(layout.headerBytes())
        try tokens.map(Int64.init).withUnsafeBytes { try out.write($0) }
        try logits.withUnsafeBytes { try out.write($0) }
        try out.commit()
    }
}
