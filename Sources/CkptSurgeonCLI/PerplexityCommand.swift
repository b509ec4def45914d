import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonEmit
import SurgeonEval
import SurgeonModel

struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ppl",
        abstract: "Measure perplexity on a text file.",
        discussion: """
        The text is tokenized whole with the model's tokenizer and cut into non-overlapping \
        windows of --ctx tokens. --protocol come (default) scores every token after the first \
        of each window, as the CoMe paper's code does; --protocol llama.cpp reproduces \
        llama-perplexity (BOS at each chunk start when the vocabulary adds one, loss on the \
        second half of each chunk) so the two tools can be compared number to number.

        Without --text, the text is the wikitext-2 raw test split, which ships inside the tool \
        (CC BY-SA 3.0): the perplexity corpus of the CoMe paper.

        The model runs layer by layer through the streaming executor: one layer's weights are \
        decoded to f32 at a time, for --batch windows at once.

        Examples:
          ckpt-surgeon ppl SmolLM2-135M-Instruct.Q4_1.gguf --windows 40
          ckpt-surgeon ppl SmolLM2-135M-Instruct.Q4_1.gguf --text wiki.test.raw
          ckpt-surgeon ppl ./smollm2-hf --text wiki.test.raw --ctx 512 --windows 40 --json
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Text file to score (default: the shipped wikitext-2 test split).")
    var text: String?

    @Option(help: "Window length in tokens.")
    var ctx: Int = 512

    @Option(help: "Score at most this many windows (default: all).")
    var windows: Int?

    @Option(name: .customLong("protocol"), help: "Scoring protocol: come or llama.cpp.")
    var scoring: Perplexity.ScoringProtocol = .come

    @Option(help: "Windows per batch through the layers.")
    var batch: Int = 16

    @Option(help: "Hidden states above this size spill to temporary files (e.g. 2GB).")
    var memoryBudget: String = "2GB"

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard ctx >= 2 else { throw ValidationError("--ctx must be at least 2") }
        guard batch >= 1 else { throw ValidationError("--batch must be at least 1") }
        guard ByteSize.parse(memoryBudget) != nil else { throw ValidationError("--memory-budget '\(memoryBudget)' is not a size") }
    }

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        let tokenizer = try TokenizerLoader.load(for: checkpoint)
        let (corpus, name) = try text.map { (try readInput(prompt: nil, file: $0), $0) } ?? Self.shippedTestSplit()
        let ids = tokenizer.encodeWithSpecials(corpus)
        guard ids.count >= ctx else {
            throw InputError("\(name) has \(ids.count) tokens, fewer than one window of \(ctx)")
        }
        var options = Perplexity.Options()
        options.context = ctx
        options.maxWindows = windows
        options.scoring = scoring
        options.batchWindows = batch
        options.memoryBudget = ByteSize.parse(memoryBudget)!
        let executor = try StreamingExecutor(checkpoint: checkpoint, memoryBudget: options.memoryBudget)
        let bar = ProgressBar(label: "ppl", unit: "windows")
        let result = try Perplexity.evaluate(executor, ids: ids, options: options, bosId: tokenizer.bosId,
                                             addsBos: tokenizer.addsBos, progress: bar.update)
        bar.finish()
        if json {
            try printJSON(result)
        } else {
            print(String(format: "perplexity %.4f  (%d windows × %d tokens, %d scored, protocol %@, %.1f tokens/s)",
                         result.perplexity, result.windows, ctx, result.scoredTokens, scoring.rawValue, result.tokensPerSecond))
        }
    }
}

extension PerplexityCommand {
    /// The wikitext-2 raw test split shipped with the eval data, and a name for messages.
    static func shippedTestSplit() throws -> (String, String) {
        do {
            let (text, path) = try DataSource.bundled().text("wikitext-2/wiki.test.raw")
            return (text, path)
        } catch {
            throw InputError("the shipped wikitext-2 test split is missing from the installation (\(error)); pass --text FILE")
        }
    }
}

extension Perplexity.ScoringProtocol: ExpressibleByArgument {}
