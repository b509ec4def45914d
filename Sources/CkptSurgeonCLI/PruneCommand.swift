import ArgumentParser
import Foundation
import SurgeonFormats
import SurgeonEmit
import SurgeonModel
import SurgeonSurgery

struct PruneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "prune",
        abstract: "Prune to a target depth with CoMe, CoMe-P, or a baseline method.",
        discussion: """
        Baselines (the CoMe paper's comparison, SPEC §5), each writing the same manifest:
          shortgpt    remove the layers with the lowest Block Influence (one calibration pass)
          reverse     remove the last layers
          magnitude   remove the layers with the smallest Σ|w| over all their parameters
          magnitude+  the same, never removing the first 4 or the last 2 layers
          sleb        remove one layer at a time: the one whose removal gives the lowest
                      calibration perplexity (reruns only the layers after each candidate)
          laco        LaCo: merge groups of --laco-group layers as W0 + Σ(Wi − W0), from the top
                      down to layer 1, keeping a merge when the last layer's states keep mean
                      cosine similarity > --laco-threshold with the original model's, then
                      jumping --laco-interval layers down; if a sweep ends above the target,
                      the threshold drops by 0.05 and the sweep restarts
          mka         MKA with equal NPIB scores: fuse the last two layers with weights
                      e^0.5/(1+e^0.5) ≈ 0.62 (shallower) and 0.38, until the target depth;
                      NPIB itself is not computed (the paper finds it ≈ 0.5 : 0.5)

        --method come (Alg. 1 of the CoMe paper): until --target-layers remain, calibrate, pick \
        the window of --merge-item adjacent layers with the smallest SBI, merge it (see merge), \
        repeat. Each round resumes from the cached hidden states just before the merge point \
        instead of recomputing from the embeddings; --no-resume recomputes everything (same \
        result, for checking). --wo-repeat makes windows that contain an already-merged layer \
        wait until no other window is left.

        --method come-p (Alg. 2, CoMe-P): as come with 2-layer windows, but the ratio of the \
        first layer is searched over r = 0, 1/n, …, 1 (n = --granularity): each candidate merge \
        is scored by perplexity on the calibration set, running only the layers from the merge \
        point on, and the best is kept. It costs n + 1 partial forward passes per merge; the \
        manifest records every candidate's perplexity.

        --save-steps DIR writes the model after every merge to DIR/step-NN (HF folder with its \
        manifest). --resume MANIFEST continues an interrupted run from such a step: its merges are \
        replayed from the recorded units (no calibration), then pruning goes on; the result equals \
        an uninterrupted run's. The input, method and calibration must be the same.

        Examples:
          ckpt-surgeon prune SmolLM2-135M-Instruct.Q4_1.gguf --method come --target-layers 21 -o smollm2-21
          ckpt-surgeon prune ./smollm2-hf --target-layers 24 --nsamples 16 --seqlen 256 -o s24.gguf
          ckpt-surgeon prune smollm2-hf --method come-p --target-layers 21 --save-steps steps -o smollm2-21p
          ckpt-surgeon prune smollm2-hf --method come-p --target-layers 21 --resume steps/step-04/surgery.json -o smollm2-21p
        """)

    /// A name from the method registry.
    struct MethodName: ExpressibleByArgument {
        let method: any PruningMethod
        init?(argument: String) {
            guard let method = PruningMethods.named(argument) else { return nil }
            self.method = method
        }
        static var allValueStrings: [String] { PruningMethods.all.map(\.name) }
        var defaultValueDescription: String { method.name }
    }

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "Pruning method.")
    var method = MethodName(argument: "come")!

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

    @Option(help: "come-p: ratios tried are i/n for i = 0…n.")
    var granularity: Int = 20

    @Option(help: "laco: layers merged per group (C).")
    var lacoGroup: Int = 3

    @Option(help: "laco: cosine similarity a merge must keep (T).")
    var lacoThreshold: Double = 0.65

    @Option(help: "laco: layers skipped down after an accepted merge (I).")
    var lacoInterval: Int = 2

    @Option(help: "Write the model after every merge to DIR/step-NN.")
    var saveSteps: String?

    @Option(help: "Continue from the surgery.json of a saved step.")
    var resume: String?

    @Flag(help: "Heal right after pruning (see heal), the input as teacher, with the same calibration options (each step's defaults where none are given).")
    var heal = false

    @Option(help: "With --heal: merged, gaps or all (default: merged for merging methods, gaps for deletions).")
    var healLayers: HealSelection?

    @OptionGroup var refit: RefitOptions

    @OptionGroup var calibration: CalibrationOptions
    @OptionGroup var out: SurgeryOutputOptions

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        try out.checkBeforeWork(inputs: checkpoint.path)
        let layers = checkpoint.config.numHiddenLayers
        guard targetLayers >= 1, targetLayers < layers else {
            throw InputError("\(checkpoint.path): --target-layers \(targetLayers) out of range (the model has \(layers) layers)")
        }
        guard mergeItem >= 2 else { throw InputError("--merge-item must be at least 2") }
        let method = self.method.method
        var options = try rule.pruneOptions(checkpoint.family, windowSize: mergeItem)
        options.mergeItem = mergeItem
        options.skipMetric = skipMetric
        options.withoutRepeat = woRepeat
        options.resume = !noResume
        options.memoryBudget = calibration.memoryBudgetBytes
        var settings = PruningSettings(targetLayers: targetLayers)
        settings.granularity = granularity
        settings.laco = lacoParameters
        settings.log = { FileHandle.standardError.write(Data("prune: \($0)\n".utf8)) }
        do {
            try method.configure(&options, settings)
        } catch let error as SurgeryError {
            throw InputError("\(error)")
        }
        let record = method.record(options, settings)
        let calib = try calibration.load(for: checkpoint)
        try checkTemporaryFileSpace(LayerPruner.temporaryBytesNeeded(
            checkpoint.config, windows: calib.windows.count, length: calib.windows.first?.count ?? 0, targetLayers: targetLayers),
            for: "prune")
        let pruner = try LayerPruner(checkpoint: checkpoint, calibration: calib, options: options)
        settings.afterStep = { step in
            try save(pruner, step: step, checkpoint: checkpoint, calibration: calib, method: record)
        }
        if let resume {
            guard method.resumable else { throw InputError("--method \(method.name) does not resume from saved steps") }
            let steps = try resumableSteps(resume, checkpoint: checkpoint, method: record, calibration: calib)
            do {
                try pruner.replay(steps)
            } catch let error as SurgeryError {
                throw InputError("\(resume): \(error)")
            }
            FileHandle.standardError.write(Data("prune: replayed \(steps.count) merges from \(resume); \(pruner.stack.count) layers\n".utf8))
        }
        let outcome: PruningOutcome
        do {
            outcome = try method.prune(pruner, settings)
        } catch let error as SurgeryError {
            throw InputError("\(checkpoint.path): \(error)")
        }
        let (stack, healing) = try healIfAsked(pruner, checkpoint: checkpoint, method: method)
        try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: method.calibrates ? calib : nil,
                         method: record, out: out, stack: stack, healing: healing)
        print(outcome.line(output: out.output, layers: pruner.stack.count) + healedText(healing))
    }

    /// With --heal, the pruned stack refitted against the input (and the healing record).
    private func healIfAsked(_ pruner: LayerPruner, checkpoint: Checkpoint,
                             method: any PruningMethod) throws -> (LayerStack?, SurgeryManifest.Healing?) {
        guard heal else { return (nil, nil) }
        var stack = pruner.stack
        let provenance = (0..<stack.count).map { stack.originals($0) }
        let healCalibration = try calibration.load(for: checkpoint, defaults: Healer.defaultCorpora,
                                                   samples: Healer.defaultSamples)
        let healing = try refit.heal(teacher: checkpoint, student: checkpoint, stack: &stack, provenance: provenance,
                                     selection: healLayers ?? (method.merges ? .merged : .gaps), calibration: healCalibration,
                                     memoryBudget: calibration.memoryBudgetBytes, workspace: pruner.executor.workspace)
        return (stack, healing)
    }

    private func healedText(_ healing: SurgeryManifest.Healing?) -> String {
        healing.map { "; healed \($0.refits.count) layers, \(RefitOptions.summary($0.refits))" } ?? ""
    }

    private var lacoParameters: LaCoParameters {
        var p = LaCoParameters()
        p.group = lacoGroup
        p.threshold = lacoThreshold
        p.interval = lacoInterval
        return p
    }

    /// With --save-steps, writes the model as it is after step `step` to DIR/step-NN.
    private func save(_ pruner: LayerPruner, step: Int, checkpoint: Checkpoint, calibration: CalibrationSet,
                      method: SurgeryManifest.Method) throws {
        guard let saveSteps else { return }
        try FileManager.default.createDirectory(atPath: saveSteps, withIntermediateDirectories: true)
        try writeSurgery(checkpoint: checkpoint, pruner: pruner, calibration: calibration, method: method,
                         to: saveSteps + "/" + String(format: "step-%02d", step), format: .safetensors,
                         dtype: out.dtype, replace: out.force)
    }

    /// The steps of a saved manifest, after checking it comes from the same input, method
    /// and calibration (otherwise continuing would not give the uninterrupted result).
    private func resumableSteps(_ path: String, checkpoint: Checkpoint, method: SurgeryManifest.Method,
                                calibration: CalibrationSet) throws -> [MergeStep] {
        guard let data = FilePath.contents(path) else {
            throw InputError("\(path): cannot read the manifest to resume from")
        }
        let manifest = try SurgeryManifest.decode(data, path: path)
        var problems: [String] = []
        if manifest.source.configXxh3 != (try SurgeryManifest.configHash(of: checkpoint)) {
            problems.append("its source is another model")
        }
        if !manifest.method.choosesLike(method) {
            problems.append("it was made with other method options (\(manifest.method.name))")
        }
        if let c = manifest.calibration, c.corpusXxh3 != calibration.corpusXXH3 || c.nsamples != calibration.nsamples
            || c.seqlen != calibration.seqlen || c.seed != calibration.seed {
            problems.append("it was calibrated on other samples")
        }
        if manifest.output.layers <= targetLayers { problems.append("it already has \(manifest.output.layers) layers") }
        guard problems.isEmpty else { throw InputError("\(path): cannot resume: \(problems.joined(separator: "; "))") }
        return manifest.steps
    }
}
