import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonFormats
import SurgeonModel
import SurgeonSurgery

/// Options shared by every command that calibrates.
struct CalibrationOptions: ParsableArguments {
    @Option(help: "Calibration text; repeat to mix corpora, the windows split evenly (default: the shipped wikitext-2 validation split; heal: that and the shipped C4 sample).")
    var calib: [String] = []

    @Option(help: "Pre-tokenized calibration windows: a JSON array of equal-length arrays of ids.")
    var calibTokens: String?

    @Option(help: "Calibration windows (default 32; heal: 64).")
    var nsamples: Int?

    @Option(help: "Tokens per calibration window.")
    var seqlen: Int = 512

    @Option(help: "Seed for the window offsets.")
    var seed: UInt64 = 0

    @Option(help: "Hidden states above this size spill to temporary files (e.g. 2GB).")
    var memoryBudget: String = "2GB"

    func validate() throws {
        guard (nsamples ?? 1) >= 1, seqlen >= 2 else { throw ValidationError("--nsamples must be ≥ 1 and --seqlen ≥ 2") }
        guard ByteSize.parse(memoryBudget) != nil else { throw ValidationError("--memory-budget '\(memoryBudget)' is not a size") }
    }

    var memoryBudgetBytes: Int { ByteSize.parse(memoryBudget)! }

    /// The calibration windows: `--calib-tokens`, or `--nsamples` (else `samples`) windows
    /// of the `--calib` texts (else the `defaults`).
    func load(for checkpoint: Checkpoint, defaults: [ShippedCorpus] = [.wikiValid], samples: Int = 32) throws -> CalibrationSet {
        if let calibTokens {
            guard let data = FilePath.contents(calibTokens),
                  let windows = try? JSONDecoder().decode([[Int]].self, from: data) else {
                throw InputError("\(calibTokens): not a JSON array of arrays of token ids")
            }
            let vocab = checkpoint.config.vocabSize
            guard windows.allSatisfy({ $0.allSatisfy { $0 >= 0 && $0 < vocab } }) else {
                throw InputError("\(calibTokens): token ids must be below the vocabulary size \(vocab)")
            }
            return try CalibrationSet(windows: windows, corpus: calibTokens)
        }
        var texts: [(name: String, text: String)] = []
        if calib.isEmpty {
            for corpus in defaults {
                guard let path = corpus.path else {
                    throw InputError("the shipped calibration corpus \(corpus.rawValue) is missing from the installation; pass --calib FILE")
                }
                texts.append((corpus.name, try readInput(prompt: nil, file: path)))
            }
        } else {
            texts = try calib.map { ($0, try readInput(prompt: nil, file: $0)) }
        }
        let tokenizer = try TokenizerLoader.load(for: checkpoint)
        do {
            return try CalibrationSet(texts: texts, tokenizer: tokenizer, nsamples: nsamples ?? samples, seqlen: seqlen,
                                      seed: seed)
        } catch let short as CalibrationSet.TooShort {
            throw InputError(short.description)
        }
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

    /// The output checks that need no computation, made before any: an existing output
    /// without --force, and an output that is, holds or lies inside an input.
    func checkBeforeWork(inputs: String...) throws {
        try OutputFile.refuseExisting(output, replace: force)
        for input in inputs { try Converter.refuseOverwritingInput(input, output: output) }
    }
}
