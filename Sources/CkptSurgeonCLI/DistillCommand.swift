import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonEmit
import SurgeonFormats
import SurgeonModel
import SurgeonSurgery

struct DistillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "distill",
        abstract: "Train the merged layers of a pruned model to match the original (CoMe-sp / CoMe-mp distillation).",
        discussion: """
        STUDENT is an output of merge, prune or heal with its manifest; TEACHER is the model \
        that manifest was made from, checked against its per-tensor hashes. The pairs (a, b) \
        of the manifest's distillation_pairs map teacher layer a, the last of a merged range, \
        to student layer b. Only the layers b train (AdamW, weight decay 0.01, cosine decay, \
        f32 weights and moments); every other layer stays as it is.

        The loss of a pair is the paper's symmetric KL between softmax(teacher state after a) \
        and softmax(student state after b), the softmax taken over the hidden dimension, mean \
        over tokens (--loss mse: the mean squared difference instead). SPEC §7.

        --mode sp trains every layer b at once on the loss averaged over pairs, with gradients \
        flowing back through the frozen layers between them. --mode mp trains one pair at a \
        time, shallow to deep, each over all the training tokens, with the paper's decaying \
        rates rescaled to the number of pairs (--lr is the first one's).

        The training text (--text, repeatable; default: the shipped wikitext-2 validation \
        split and C4 sample) is cut into non-overlapping windows of --seqlen tokens, visited \
        in a seeded random order; --tokens asks for more than the text holds only with \
        --epochs. The teacher runs once over each window; its states live in spill files \
        on disk. Progress (tokens, loss, tokens/s, ETA) goes to stderr. --save-every K writes \
        the weights, optimiser state and data position every K steps to --checkpoint-dir; \
        --resume FILE continues from one to the same result as an uninterrupted run.

        Examples:
          ckpt-surgeon distill SmolLM2-135M-Instruct.Q4_1.gguf smollm2-21-healed -o smollm2-21-sp --mode sp
          ckpt-surgeon distill smollm2-hf smollm2-21-healed -o smollm2-21-mp.gguf --mode mp --tokens 409600
          ckpt-surgeon distill smollm2-hf smollm2-21 -o out --save-every 20 --resume out.checkpoints/step-000040.safetensors
        """)

    @Argument(help: "The original model (the student's manifest's source).")
    var teacher: String

    @Argument(help: "A merge, prune or heal output (HF folder or .gguf) with its manifest.")
    var student: String

    @Option(help: "sp (all merged layers at once) or mp (one pair at a time).")
    var mode: Distiller.Mode = .sp

    @Option(help: "Training tokens (mp: each pair trains on all of them).")
    var tokens = 204_800

    @Option(help: "Tokens per training window.")
    var seqlen = 512

    @Option(help: "Windows per optimiser step.")
    var batch = 4

    @Option(help: "Peak learning rate (mp: the first pair's). Default: sp 5e-6 (kl) or 1e-4 (mse), mp 5e-4.")
    var lr: Double?

    @Option(help: "Loss: kl (symmetric KL over the hidden softmax) or mse.")
    var loss: FeatureLoss = .kl

    @Option(help: "Training text; repeat to mix (default: the shipped wikitext-2 validation split and C4 sample).")
    var text: [String] = []

    @Option(help: "Passes over the text --tokens may take (windows repeat only when this allows).")
    var epochs = 1

    @Option(help: "Seed for the window order.")
    var seed: UInt64 = 0

    @Option(help: "Save a checkpoint every this many optimiser steps.")
    var saveEvery: Int?

    @Option(help: "Folder for checkpoints (default: OUTPUT.checkpoints).")
    var checkpointDir: String?

    @Option(help: "Continue from a checkpoint written by --save-every.")
    var resume: String?

    @Flag(help: "With --save-every, also write the model at each checkpoint, as OUTPUT.step-NNNNNN (for a curve of quality against tokens).")
    var snapshots = false

    @Flag(help: "Recompute each layer's activations in the backward instead of keeping them (sp: less memory, one more forward).")
    var recompute = false

    @Option(help: "Hidden states up to this size stay in memory (e.g. 2GB; default: all spill to temporary files).")
    var memoryBudget: String?

    @OptionGroup var out: SurgeryOutputOptions

    func validate() throws {
        guard tokens >= 1, seqlen >= 2, batch >= 1, epochs >= 1 else {
            throw ValidationError("--tokens, --batch and --epochs must be ≥ 1 and --seqlen ≥ 2")
        }
        guard (saveEvery ?? 1) >= 1 else { throw ValidationError("--save-every must be ≥ 1") }
        guard (lr ?? 1) > 0, (lr ?? 1).isFinite else { throw ValidationError("--lr must be a positive number") }
        if let memoryBudget, ByteSize.parse(memoryBudget) == nil {
            throw ValidationError("--memory-budget '\(memoryBudget)' is not a size")
        }
    }

    /// Default peak rates by mode and loss, chosen on held-out text (bench/RESULTS.md,
    /// "Distillation": the second half of wikitext-2 validation, never trained on). mp's is
    /// the paper's first rate.
    static func defaultRate(_ mode: Distiller.Mode, _ loss: FeatureLoss) -> Double {
        switch (mode, loss) {
        case (.sp, .kl): 5e-6
        case (.sp, .mse): 1e-4
        case (.mp, _): 5e-4
        }
    }

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        // Every window's states, gradients and a frozen layer's weights are MB-sized buffers.
        MallocPolicy.keepLargeBuffers()
        let inputs = try SurgeryInputs(teacher: teacher, student: student, command: "distill", output: out.output)
        try out.checkBeforeWork()
        let pairs = inputs.manifest.distillationPairs.map { (a: $0.a, b: $0.b) }
        guard !pairs.isEmpty else {
            throw InputError("\(student): its manifest \(inputs.manifestPath) has no distillation pairs (no output layer "
                             + "stands for more than one original layer, as after \(inputs.manifest.method.name)); nothing to distil")
        }
        for p in pairs {
            guard p.b >= 0, p.b < inputs.student.config.numHiddenLayers, p.a >= 0, p.a < inputs.teacher.config.numHiddenLayers,
                  inputs.provenance[p.b].upperBound == p.a else {
                throw InputError("\(inputs.manifestPath): distillation pair (a \(p.a), b \(p.b)) does not match the layer provenance")
            }
        }
        let data = try trainingData(for: inputs.teacher)
        var options = Distiller.Options()
        options.mode = mode
        options.loss = loss
        options.learningRate = lr ?? Self.defaultRate(mode, loss)
        options.batch = batch
        options.saveEvery = saveEvery
        options.recompute = recompute
        options.memoryBudget = memoryBudget.flatMap(ByteSize.parse) ?? 0
        let distiller = Distiller(teacher: inputs.teacher, student: inputs.student, pairs: pairs, options: options)
        try checkTemporarySpace(data: data, hidden: inputs.student.config.hiddenSize, pairs: pairs.count,
                                memoryBudget: options.memoryBudget)
        let identity = try runIdentity(inputs, data: data, options: options)
        var state = Distiller.State()
        if let resume {
            state = try DistillationCheckpoint.read(resume, identity: identity, weightDecay: options.weightDecay) {
                try DecoderLayerWeights.load(from: inputs.student, layer: $0)
            }
            if let problem = distiller.problem(resuming: state, data: data) {
                throw InputError("\(resume): not a usable distill checkpoint: \(problem)")
            }
        }
        let checkpoints = checkpointDir ?? out.output + ".checkpoints"
        let log: (String) -> Void = { FileHandle.standardError.write(Data("distill: \($0)\n".utf8)) }
        let report: Distiller.Report
        do {
            report = try distiller.run(data, state: &state, save: { state in
                let global = (mode == .mp ? state.phase * distiller.stepsPerPass(data) : 0) + state.step
                try saveCheckpoint(state, identity: identity, folder: checkpoints, step: global, log: log)
                if snapshots {
                    try write(state, pairs: [], inputs: inputs, data: data, distiller: distiller,
                              to: snapshotPath(step: global), replace: true)
                }
            }, log: log)
        } catch let error as SurgeryError {
            throw InputError("\(student): \(error)")
        }
        try write(state, pairs: report.pairs, inputs: inputs, data: data, distiller: distiller, to: out.output,
                  replace: out.force)
        log(String(format: "training: %d tokens in %.1f s (%.1f tokens/s); %.1f s in all, teacher and student passes included",
                   report.trainingTokens, report.trainingSeconds, Double(report.trainingTokens) / max(report.trainingSeconds, 1e-9),
                   report.seconds))
        let trainedTokens = data.tokens * (mode == .mp ? pairs.count : 1)
        let first = state.curve.first?.loss ?? .nan, last = state.curve.last?.loss ?? .nan
        print(String(format: "distilled %d layers of %@ (%@, %@ loss, %d tokens) → %@: loss %.5g → %.5g in %.0f s",
                     pairs.count, student, "come-" + mode.rawValue, loss.rawValue, trainedTokens, out.output,
                     first, last, report.seconds))
    }

    /// OUTPUT.step-NNNNNN (before the extension for a GGUF).
    private func snapshotPath(step: Int) -> String {
        let tag = String(format: ".step-%06d", step)
        return out.format == .gguf ? String(out.output.dropLast(5)) + tag + ".gguf" : out.output + tag
    }

    /// Writes the student with the trained layers of `state`, and its manifest.
    private func write(_ state: Distiller.State, pairs: [PairTraining], inputs: SurgeryInputs, data: DistillationData,
                       distiller: Distiller, to path: String, replace: Bool) throws {
        var stack = LayerStack(layerCount: inputs.student.config.numHiddenLayers)
        for (b, w) in state.trained.sorted(by: { $0.key < $1.key }) { try stack.rewrite(b, with: w) }
        var record = inputs.manifest
        record.schema = SurgeryManifest.schemaVersion
        record.tool = SurgeryManifest.Tool(version: CkptSurgeon.version, command: CommandLine.arguments)
        record.distillation = SurgeryManifest.Distillation(
            mode: mode.rawValue, loss: loss.rawValue,
            text: CalibrationRecord(corpus: data.corpus, corpusXxh3: data.corpusXXH3, nsamples: data.windows.count,
                                    seqlen: data.seqlen, seed: data.seed, corpusTokens: data.corpusTokens),
            tokens: data.tokens, epochs: epochs, batch: batch, learningRates: distiller.learningRates,
            recompute: recompute, pairs: pairs, lossCurve: Self.thin(state.curve, to: 200),
            student: SurgeryManifest.Student(path: student, output: inputs.manifest.output))
        var writer = SurgeryWriter(checkpoint: inputs.student, stack: stack, format: out.format, dtype: out.dtype)
        writer.methodName = inputs.manifest.method.name
        writer.ggufSummary = record.ggufSummary
        try writer.writeShowingProgress(to: path, replace: replace) { [record, out] hashes, files in
            var m = record
            m.output = SurgeryManifest.Output(format: out.format.rawValue, layers: stack.count, files: files, tensors: hashes)
            return m
        }
    }

    /// The training windows, refusing the wikitext-2 test split.
    private func trainingData(for teacher: Checkpoint) throws -> DistillationData {
        var texts: [(name: String, text: String)] = []
        if text.isEmpty {
            for corpus in [ShippedCorpus.wikiValid, .c4] {
                guard let path = corpus.path else {
                    throw InputError("the shipped corpus \(corpus.rawValue) is missing from the installation; pass --text FILE")
                }
                texts.append((corpus.name, try readInput(prompt: nil, file: path)))
            }
        } else {
            let test: String? = (try? PerplexityCommand.shippedTestSplit())?.0
            for file in text {
                let body = try readInput(prompt: nil, file: file)
                guard body != test else {
                    throw InputError("\(file): is the wikitext-2 test split, which perplexity is measured on; distill does not train on it")
                }
                texts.append((file, body))
            }
        }
        let tokenizer = try TokenizerLoader.load(for: teacher)
        do {
            return try DistillationData(texts: texts, tokenizer: tokenizer, tokens: tokens, seqlen: seqlen, epochs: epochs, seed: seed)
        } catch let short as DistillationData.NotEnoughText {
            throw InputError(short.description)
        }
    }

    /// The hidden states distill parks in $TMPDIR: the teacher's and the student's (and in sp
    /// a copy at every pair), each windows × seqlen × hidden f32 before compression.
    private func checkTemporarySpace(data: DistillationData, hidden: Int, pairs: Int, memoryBudget: Int) throws {
        let stateBytes = data.windows.count * data.seqlen * hidden * 4
        let copies = mode == .sp ? pairs + 2 : 2
        guard stateBytes > memoryBudget else { return }
        try checkTemporaryFileSpace(copies * stateBytes, for: "distill")
    }

    /// What a checkpoint must have been saved by: the same teacher, student, text and options.
    private func runIdentity(_ inputs: SurgeryInputs, data: DistillationData, options: Distiller.Options) throws -> String {
        let student = inputs.manifest.output.tensors.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let parts = [try SurgeryManifest.configHash(of: inputs.teacher), inputs.manifest.source.configXxh3,
                     student.joined(separator: ","), data.corpusXXH3, "\(data.order)", mode.rawValue, loss.rawValue,
                     "\(options.learningRate)", "\(batch)", "\(seqlen)"]
        return Array(parts.joined(separator: "|").utf8).withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }
    }

    /// Writes `state` as FOLDER/step-NNNNNN.safetensors (steps counted over the whole run)
    /// and removes the checkpoint before it.
    private func saveCheckpoint(_ state: Distiller.State, identity: String, folder: String, step global: Int,
                                log: (String) -> Void) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let path = folder + "/" + String(format: "step-%06d.safetensors", global)
        try DistillationCheckpoint.write(state, identity: identity, to: path)
        let earlier = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for name in earlier where name.hasPrefix("step-") && name.hasSuffix(".safetensors") && folder + "/" + name != path {
            try? FileManager.default.removeItem(atPath: folder + "/" + name)
        }
        log("checkpoint \(path)")
    }

    /// At most `count` points, evenly spaced, always with the last.
    static func thin(_ curve: [LossPoint], to count: Int) -> [LossPoint] {
        guard curve.count > count else { return curve }
        let picked = (0..<count).map { curve[$0 * (curve.count - 1) / (count - 1)] }
        return picked
    }
}

extension Distiller.Mode: ExpressibleByArgument {}
