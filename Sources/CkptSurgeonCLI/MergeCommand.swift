import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonModel
import SurgeonSurgery

struct MergeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge",
        abstract: "Merge adjacent layers into one with CoMe's concatenation merge.",
        discussion: """
        Calibrates up to the last layer of the window (channel sensitivities, BI), then keeps \
        each layer's most sensitive units in proportion to its retention ratio and concatenates \
        them: FFN channels (gate/up rows, down columns) and KV groups (a KV head, its query heads \
        and their o_proj columns, query heads staying with their own KV head). Norms are averaged \
        (--norms keep-first keeps the first layer's).

        Ratios: --ratios 0.7,0.3 explicitly, or r_t = BI_t^p / Σ BI^p raised to at least ρ for \
        the layer with the largest BI (--p, --rho; defaults by family: p 1 and no ρ for LLaMA and \
        Mistral, p 32 and ρ 0.85 for Qwen2/Qwen3). Unit counts are floor(r_t · units) for every \
        layer but the one with the largest ratio, which takes the remainder.

        The output gets every other layer copied unchanged (renumbered), config.json with the \
        new layer count, the tokenizer files, and surgery.json (see verify).

        Examples:
          ckpt-surgeon merge ./smollm2-hf --layers 26,27 -o merged
          ckpt-surgeon merge ./smollm2-hf --layers 24,25,26 --ratios 0.5,0.3,0.2 -o merged3
          ckpt-surgeon merge SmolLM2-135M-Instruct.Q4_1.gguf --layers 26,27 -o merged.gguf
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Adjacent layers to merge, e.g. 26,27.")
    var layers: String

    @OptionGroup var rule: MergeRuleOptions
    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var out: SurgeryOutputOptions

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        try out.checkBeforeWork(inputs: checkpoint.path)
        let window = try parseWindow(layers, layerCount: checkpoint.config.numHiddenLayers, path: checkpoint.path)
        var options = try rule.pruneOptions(checkpoint.family, windowSize: window.count)
        options.memoryBudget = calibration.memoryBudgetBytes
        options.resume = false
        let calib = try calibration.load(for: checkpoint)
        let pruner = try LayerPruner(checkpoint: checkpoint, calibration: calib, options: options)
        let bar = ProgressBar(label: "calibrate", unit: "layers")
        // Only this window's SBI is needed, so only its first layer's input is held.
        let stats = try pruner.calibrate(from: 0, to: window.upperBound, windowSize: window.count,
                                         windowStarts: window.lowerBound..<(window.lowerBound + 1), progress: bar.update)
        bar.finish()
        let step = try pruner.merge(window: window, stats: stats)
        let method = SurgeryManifest.Method(name: "come-merge", mergeItem: window.count, p: options.p, rho: options.rho,
                                            ratios: options.ratios, norms: options.norms.rawValue, skipMetric: options.skipMetric.rawValue)
        try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: calib, method: method, out: out)
        let ratios = step.ratios.map { String(format: "%.4f", $0) }.joined(separator: ", ")
        let bi = step.bi.map { String(format: "%.4f", $0) }.joined(separator: ", ")
        print("merged layers \(step.windowCurrent) with ratios [\(ratios)] (BI [\(bi)]) → \(out.output): \(pruner.stack.count) layers")
    }
}

/// "26,27" → 26..<28, checked: adjacent, ascending, at least two, inside the model.
func parseWindow(_ text: String, layerCount: Int, path: String) throws -> Range<Int> {
    let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
    guard values.count >= 2, values.allSatisfy({ $0 != nil }) else {
        throw InputError("--layers '\(text)' must list at least two layer indices, e.g. 26,27")
    }
    let layers = values.map { $0! }
    guard zip(layers, layers.dropFirst()).allSatisfy({ $1 == $0 + 1 }) else {
        throw InputError("--layers '\(text)' must be adjacent and ascending")
    }
    guard layers.first! >= 0, layers.last! < layerCount else {
        throw InputError("\(path): layer index \(layers.last! >= layerCount ? layers.last! : layers.first!) out of range (the model has layers 0…\(layerCount - 1))")
    }
    return layers.first!..<(layers.last! + 1)
}

/// How merged layers are built, shared by merge and prune.
struct MergeRuleOptions: ParsableArguments {
    @Option(help: "Explicit retention ratios, one per window layer, summing to 1 (used for every merge).")
    var ratios: String?

    @Option(help: "Skewness exponent p of the BI ratio heuristic (default: 1, or 32 for Qwen).")
    var p: Double?

    @Option(help: "Minimum retention ratio ρ of the most important layer, or none (default: none, 0.85 for Qwen).")
    var rho: String?

    @Option(help: "mean (average the norms) or keep-first.")
    var norms: ConcatenationMerge.NormRule = .mean

    /// Options with the family's defaults where none are given.
    func pruneOptions(_ family: ModelFamily, windowSize: Int) throws -> LayerPruner.Options {
        var options = LayerPruner.Options()
        options.p = p ?? family.traits.comeP
        options.norms = norms
        switch rho {
        case nil: options.rho = family.traits.comeRho
        case "none": options.rho = nil
        case let text?:
            guard let value = Double(text), value > 0, value < 1 else { throw InputError("--rho must be in (0, 1) or 'none'") }
            options.rho = value
        }
        if let ratios {
            let values = ratios.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard values.count == windowSize, values.allSatisfy({ $0 >= 0 }), abs(values.reduce(0, +) - 1) < 1e-6 else {
                throw InputError("--ratios needs \(windowSize) non-negative numbers summing to 1")
            }
            options.ratios = values
        }
        return options
    }
}

/// Writes the pruner's stack (or `stack`, a healed copy of it) and the manifest.
func writeSurgery(checkpoint: Checkpoint, pruner: LayerPruner, calibration: CalibrationSet?,
                  method: SurgeryManifest.Method, out: SurgeryOutputOptions,
                  stack: LayerStack? = nil, healing: SurgeryManifest.Healing? = nil) throws {
    try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: calibration, method: method,
                     to: out.output, format: out.format, dtype: out.dtype, replace: out.force, stack: stack, healing: healing)
}

func writeSurgery(checkpoint: Checkpoint, pruner: LayerPruner, calibration: CalibrationSet?,
                  method: SurgeryManifest.Method, to path: String, format: OutputFormat, dtype: DTypeChoice,
                  replace: Bool, stack: LayerStack? = nil, healing: SurgeryManifest.Healing? = nil) throws {
    let stack = stack ?? pruner.stack
    var writer = SurgeryWriter(checkpoint: checkpoint, stack: stack, format: format, dtype: dtype)
    writer.methodName = method.name
    writer.ggufSummary = SurgeryManifest.ggufSummary(method: method.name, sourceLayers: checkpoint.config.numHiddenLayers,
                                                     layers: SurgeryManifest.provenance(stack).0, healing: healing)
    try writer.writeShowingProgress(to: path, replace: replace) { hashes, files in
        try SurgeryManifest.make(toolVersion: CkptSurgeon.version, command: CommandLine.arguments, checkpoint: checkpoint,
                                 calibration: calibration?.record, method: method, steps: pruner.steps,
                                 stack: stack, format: format, hashes: hashes, files: files, healing: healing)
    }
}

extension ConcatenationMerge.NormRule: ExpressibleByArgument {}
