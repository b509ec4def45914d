import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonModel

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with greedy decoding.",
        discussion: """
        Loads every layer as f32 and decodes one token at a time with a KV cache, always \
        taking the most likely token, until -n tokens or an end-of-sequence token. The \
        continuation is printed to stdout as it is produced.

        Examples:
          ckpt-surgeon generate SmolLM2-135M-Instruct.Q4_1.gguf --prompt "The capital of France is"
          ckpt-surgeon generate ./pruned -n 64 --prompt "Once upon a time"
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Text to continue.")
    var prompt: String

    @Option(name: .short, help: "Tokens to generate.")
    var n: Int = 32

    @Flag(help: "Print the prompt before the continuation.")
    var echo = false

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        let tokenizer = try TokenizerLoader.load(for: checkpoint)
        let transformer = try Transformer(checkpoint: checkpoint)
        let promptIds = tokenizer.encodeWithSpecials(prompt)
        if echo { FileHandle.standardOutput.write(Data(prompt.utf8)) }
        var produced: [Int] = []
        var printed = ""
        let stop = Set([tokenizer.eosId].compactMap { $0 } + checkpoint.config.eosTokenIds)
        _ = transformer.generate(prompt: promptIds, maxTokens: n, stop: stop) { token in
            produced.append(token)
            // Decode the whole continuation each time so multi-byte characters come out whole.
            let text = tokenizer.decode(produced)
            if text.hasPrefix(printed) && !text.hasSuffix("\u{FFFD}") {
                FileHandle.standardOutput.write(Data(text.dropFirst(printed.count).utf8))
                printed = text
            }
        }
        print(tokenizer.decode(produced).dropFirst(printed.count))
    }
}
