import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonFormats
import SurgeonModel
import SurgeonSurgery

/// Options shared by every command that calibrates.
struct CalibrationOptions: ParsableArguments {
    @Option(help: "Calibration text (default: the shipped wikitext-2 validation split).")
    var calib: String?

    @Option(help: "Pre-tokenized calibration windows: a JSON array of equal-length arrays of ids.")
    var calibTokens: String?

    @Option(help: "Calibration windows.")
    var nsamples: Int = 32

    @Option(help: "Tokens per calibration window.")
    var seqlen: Int = 512

    @Option(help: "Seed for the window offsets.")
    var seed: UInt64 = 0

    @Option(help: "Hidden states above this size spill to zstd temp files (e.g. 2GB).")
    var memoryBudget: String = "2GB"

    func validate() throws {
        guard nsamples >= 1, seqlen >= 2 else { throw ValidationError("--nsamples must be ≥ 1 and --seqlen ≥ 2") }
        guard ByteSize.parse(memoryBudget) != nil else { throw ValidationError("--memory-budget '\(memoryBudget)' is not a size") }
    }

    var memoryBudgetBytes: Int { ByteSize.parse(memoryBudget)! }

    func load(for checkpoint: Checkpoint) throws -> CalibrationSet {
        if let calibTokens {
            guard let data = FileManager.default.contents(atPath: calibTokens),
                  let windows = try? JSONDecoder().decode([[Int]].self, from: data) else {
                throw InputError("\(calibTokens): not a JSON array of arrays of token ids")
            }
            let vocab = checkpoint.config.vocabSize
            guard windows.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 < vocab } }) else {
                throw InputError("\(calibTokens): token ids must be below the vocabulary size \(vocab)")
            }
            return try CalibrationSet(windows: windows, corpus: calibTokens)
        }
        guard let path = calib ?? CalibrationSet.defaultCorpusPath else {
            throw InputError("the default calibration corpus is missing from the installation; pass --calib FILE")
        }
        let text = try readInput(prompt: nil, file: path)
        let tokenizer = try TokenizerLoader.load(for: checkpoint)
        return try CalibrationSet(text: text, corpus: calib == nil ? "wikitext-2-raw validation (shipped)" : path,
                                  tokenizer: tokenizer, nsamples: nsamples, seqlen: seqlen, seed: seed)
    }
}

/// Options shared by commands that write a surgery output.
struct SurgeryOutputOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "Output HF folder, or a .gguf file.")
    var output: String

    @Option(help: "dtype of copied tensors: keep, f32, f16, bf16, q8_0 (GGUF).")
    var dtype: DTypeChoice = .keep

    @Flag(help: "Replace the output if it exists.")
    var force = false

    var format: OutputFormat { output.hasSuffix(".gguf") ? .gguf : .safetensors }
}
