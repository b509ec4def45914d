import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

/// Which layers of a pruned model a heal refits (SPEC §9).
public enum HealSelection: String, Sendable, Codable, CaseIterable {
    /// Layers standing for more than one original layer, each fitted to the teacher's
    /// stream after the last of them.
    case merged
    /// Also the layer before each run of deleted layers, fitted to the teacher's stream
    /// after the run, so that it absorbs the run.
    case gaps
    /// Every layer, each fitted to the teacher's stream entering the next one.
    case all
}

/// Closed-form recovery of a pruned model (SPEC §9): for each chosen layer b, the
/// `down_proj` (and its bias, where the family has one) that best maps the student's own
/// post-attention stream to the teacher's stream after the original layers b replaces:
///
///     min_W Σ ‖T − h_b − A_b·Wᵀ‖² + λ·mean(diag AᵀA)·‖W‖²
///
/// Teacher and student run over the calibration windows in lockstep, one layer at a
/// time, through streaming executors; the student runs from its own input with every
/// earlier refit applied, so errors do not compound.
public struct Healer {
    /// The calibration heal uses unless told otherwise, chosen on held-out validation text
    /// (bench/heal-sweep.py): wikitext-2 validation and C4 windows half and half (a refit
    /// on one domain overfits it), 64 windows of 512 tokens, λ = 0.1.
    public static let defaultCorpora: [ShippedCorpus] = [.wikiValid, .c4]
    public static let defaultSamples = 64

    public struct Options: Sendable {
        public var selection: HealSelection = .merged
        /// λ, relative to the mean of diag(AᵀA).
        public var ridge = 0.1
        public var memoryBudget = 2 << 30
        public init() {}
    }

    public let teacher: Checkpoint
    public let student: Checkpoint
    /// For each student layer, the teacher layers it stands for.
    public let provenance: [ClosedRange<Int>]
    public let options: Options
    /// Shared by the teacher's and the student's executors, which take turns.
    private let workspace: LayerWorkspace

    public init(teacher: Checkpoint, student: Checkpoint, provenance: [ClosedRange<Int>], options: Options,
                workspace: LayerWorkspace = LayerWorkspace()) {
        self.teacher = teacher
        self.student = student
        self.provenance = provenance
        self.options = options
        self.workspace = workspace
    }

    /// The student layers to refit, each with the teacher layer whose output it must match.
    public static func plan(provenance: [ClosedRange<Int>], teacherLayers: Int,
                            selection: HealSelection) -> [(layer: Int, target: Int)] {
        provenance.indices.compactMap { i in
            let range = provenance[i]
            // The teacher's stream entering the next student layer's first original.
            let beforeNext = (i + 1 < provenance.count ? provenance[i + 1].lowerBound : teacherLayers) - 1
            switch selection {
            case .merged: return range.count > 1 ? (i, range.upperBound) : nil
            case .gaps: return range.count > 1 || beforeNext > range.upperBound ? (i, beforeNext) : nil
            case .all: return (i, beforeNext)
            }
        }
    }

    /// Refits the planned layers of `stack` (the student's layers, read from `student`)
    /// over `calibration`, replacing each in `stack`; returns what each refit did.
    public func heal(_ stack: inout LayerStack, calibration: CalibrationSet,
                     log: (String) -> Void = { _ in }) throws -> [LayerRefit] {
        guard !student.family.traits.hasSandwichNorms else {
            // The refit is linear in down_proj only when the MLP's output joins the
            // residual stream directly; a norm after it (Gemma 2) makes it non-linear.
            throw SurgeryError.unsupported("heal refits down_proj against the residual stream, "
                + "which \(student.family.traits.hfClassName)'s norm after the MLP makes non-linear; not supported for this family")
        }
        let plan = Self.plan(provenance: provenance, teacherLayers: teacher.config.numHiddenLayers,
                             selection: options.selection)
        guard let last = plan.last?.layer else { return [] }
        let targets = Dictionary(uniqueKeysWithValues: plan.map { ($0.layer, $0.target) })
        // Chunks of 2048 tokens halve the shared workspace, and the teacher's states, read
        // once per refit, live on disk: on SmolLM2 at 64 × 512 tokens that took the peak
        // RSS from 431 to 228 MB for 15% more time (117 → 134 s).
        let teacherRun = try StreamingExecutor(checkpoint: teacher, memoryBudget: 0,
                                               chunkTokens: 2048, workspace: workspace)
        let studentRun = try StreamingExecutor(checkpoint: student, memoryBudget: options.memoryBudget / 2,
                                               chunkTokens: 2048, workspace: workspace)
        let teacherStates = try teacherRun.embed(calibration.windows)
        var studentStates = try studentRun.embed(calibration.windows)
        var teacherDone = 0
        var refits: [LayerRefit] = []
        let started = Date()
        // Progress in layer forwards: the teacher's up to the last target, the student's up
        // to the last refit, and a second one for each refitted layer.
        let forwards = Double(plan.map(\.target).max()! + 1 + last + 1 + plan.count)
        var forwardsDone = 0.0
        for b in 0...last {
            guard let target = targets[b] else {
                let weights = try stack.weights(b, checkpoint: student)
                try studentRun.run(studentStates, layers: b..<(b + 1), weights: { _ in weights })
                forwardsDone += 1
                continue
            }
            // The teacher catches up first, so one layer's weights are resident at a time.
            try teacherRun.run(teacherStates, layers: teacherDone..<(target + 1))
            forwardsDone += Double(target + 1 - teacherDone)
            teacherDone = target + 1
            var weights = try stack.weights(b, checkpoint: student)
            let (before, after, ridge) = try refit(b, &weights, states: &studentStates, executor: studentRun,
                                                   teacher: teacherStates, log: log)
            try stack.rewrite(b, with: weights)
            let range = provenance[b]
            refits.append(LayerRefit(layer: b, original: [range.lowerBound, range.upperBound], target: target,
                                     mseBefore: before, mseAfter: after, ridge: ridge))
            forwardsDone += 2
            let elapsed = Date().timeIntervalSince(started)
            let eta = elapsed / forwardsDone * (forwards - forwardsDone)
            log(String(format: "layer %d (originals %d–%d → teacher %d): output MSE %.5g → %.5g  [%d/%d refits, %.0f s, eta %.0f s]",
                       b, range.lowerBound, range.upperBound, target, before, after, refits.count, plan.count, elapsed, eta))
        }
        return refits
    }

    /// Refits `weights` (student layer `b`)'s down_proj against the teacher's states and runs
    /// the layer over `states` with the result; returns the output MSE before and after and
    /// the ridge used.
    private func refit(_ b: Int, _ weights: inout DecoderLayerWeights, states: inout HiddenStates,
                       executor: StreamingExecutor, teacher: HiddenStates,
                       log: (String) -> Void) throws -> (Double, Double, Double) {
        // The layer's input, kept on disk for the second run with the refitted weights.
        let input = try states.copy(memoryBudget: 0)
        let fit = RidgeRegression(inputs: student.config.intermediateSize, outputs: student.config.hiddenSize,
                                  intercept: weights[.downBias] != nil)
        let before = try run(executor, states, layer: b, weights: weights, against: teacher) { a, t in
            fit.add(x: a.mlpIntermediate.baseAddress!, target: t, minus: a.postAttention.baseAddress!, rows: a.rows)
        }
        let solution: RidgeRegression.Solution
        do {
            solution = try Profile.measure(.refit) { try fit.solve(ridge: options.ridge) }
        } catch let failure as RidgeRegression.Failure {
            throw SurgeryError.healing("layer \(b): \(failure)")
        }
        if solution.ridge != options.ridge {
            log("layer \(b): the system was singular at ridge \(options.ridge); solved at ridge \(solution.ridge)")
        }
        weights[.down] = solution.weights
        weights[.downBias] = solution.bias
        states = input
        let after = try run(executor, states, layer: b, weights: weights, against: teacher) { _, _ in }
        return (before, after, solution.ridge)
    }

    /// Runs student layer `layer` (`weights`) over `states` in place; `visit` sees each chunk's
    /// activations with the teacher's states for the same tokens. Returns the output's
    /// mean squared error against the teacher per element.
    private func run(_ executor: StreamingExecutor, _ states: HiddenStates, layer: Int, weights: DecoderLayerWeights,
                     against teacher: HiddenStates,
                     visit: @escaping (LayerActivations, UnsafePointer<Float>) -> Void) throws -> Double {
        precondition(states.chunkSequences == teacher.chunkSequences, "teacher and student chunk alike")
        var squared = 0.0, count = 0
        var failure: Error?
        try executor.run(states, layers: layer..<(layer + 1), weights: { _ in weights }, observe: { _, a in
            do {
                try teacher.withChunk(a.firstSequence / teacher.chunkSequences) { t in
                    visit(a, t)
                    for i in 0..<a.output.count {
                        let d = Double(a.output[i]) - Double(t[i])
                        squared += d * d
                    }
                    count += a.output.count
                }
            } catch {
                failure = error
            }
        })
        if let failure { throw failure }
        return squared / Double(max(count, 1))
    }
}
