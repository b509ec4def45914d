import ArgumentParser
import Foundation
import SurgeonEmit
import SurgeonModel
import SurgeonSurgery

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Prune to a target depth with CoMe (progressive concatenation merge).",
        discussion: """
        --method shortgpt removes the --target-layers complement with the lowest Block Influence \
        after one calibration pass (the plain-deletion baseline CoMe is compared with).

        --method come (Alg. 1 of the CoMe paper): until --target-layers remain, calibrate, pick \
        the window of --merge-item adjacent layers with the smallest SBI, merge it (see merge), \
        repeat. Each round resumes from the cached hidden states just before the merge point \
        instead of recomputing from the embeddings; --no-resume recomputes everything (same \
        result, for checking). --wo-repeat makes windows that contain an already-merged layer \
        wait until no other window is left.

        Examples:
          ckpt-surgeon prune SmolLM2-135M-Instruct.Q4_1.gguf --method come --target-layers 21 -o smollm2-21
          ckpt-surgeon prune ./smollm2-hf --target-layers 24 --nsamples 16 --seqlen 256 -o s24.gguf
        """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case come, shortgpt }

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Pruning method.")
    var method: Method = .come

    @Option(help: "Layers the pruned model keeps.")
    var targetLayers: Int

    @Option(help: "Layers merged per step.")
    var mergeItem: Int = 2

    @OptionGroup var rule: MergeRuleOptions

    @Option(help: "cosine (the paper's SBI) or angular-last-token (upstream code).")
    var skipMetric: SkipMetric = .cosine

    @Flag(help: "Windows with an already-merged layer wait until no other is left.")
    var woRepeat = false

    @Flag(help: "Recompute from the embeddings every round instead of resuming at the merge point.")
    var noResume = false

    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var out: SurgeryOutputOptions

    func run() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        let layers = checkpoint.config.numHiddenLayers
        guard targetLayers >= 1, targetLayers < layers else {
            throw InputError("\(checkpoint.path): --target-layers \(targetLayers) out of range (the model has \(layers) layers)")
        }
        guard mergeItem >= 2 else { throw InputError("--merge-item must be at least 2") }
        var options = try rule.pruneOptions(checkpoint.family, windowSize: mergeItem)
        options.mergeItem = mergeItem
        options.skipMetric = skipMetric
        options.withoutRepeat = woRepeat
        options.resume = !noResume
        options.memoryBudget = calibration.memoryBudgetBytes
        let calib = try calibration.load(for: checkpoint)
        let pruner = try CoMePruner(checkpoint: checkpoint, calibration: calib, options: options)
        if method == .shortgpt {
            let removed = try pruner.removeLowestBI(to: targetLayers)
            try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: calib,
                             method: SurgeryManifest.Method(name: "shortgpt", targetLayers: targetLayers), out: out)
            print("removed layers \(removed) (lowest BI) → \(out.output): \(pruner.stack.count) layers")
            return
        }
        try pruner.prune(to: targetLayers) { FileHandle.standardError.write(Data("prune: \($0)\n".utf8)) }
        let method = SurgeryManifest.Method(name: "come", targetLayers: targetLayers, mergeItem: mergeItem, p: options.p,
                                            rho: options.rho, ratios: options.ratios, norms: options.norms.rawValue,
                                            skipMetric: skipMetric.rawValue, withoutRepeat: woRepeat, resume: options.resume)
        try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: calib, method: method, out: out)
        let recompute = (targetLayers + 1...layers).reduce(0, +)
        print("pruned \(layers) → \(pruner.stack.count) layers in \(pruner.steps.count) merges → \(out.output) (\(pruner.layerForwards) layer forwards; \(recompute) without resuming)")
    }
}
