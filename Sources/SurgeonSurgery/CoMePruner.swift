import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

/// One merge of a CoMe run, as the manifest records it.
public struct MergeStep: Sendable, Codable {
    /// Current layer indices of the window when it was merged.
    public let windowCurrent: [Int]
    /// The original layers each window layer stood for.
    public let windowOriginal: [[Int]]
    public let sbi: Double
    public let bi: [Double]
    public let ratios: [Double]
    public let kept: [KeptUnits]
    /// Index of the merged layer right after this step.
    public let mergedIndex: Int
    /// CoMe-P: every ratio tried and the calibration perplexity it gave.
    public var candidates: [RatioCandidate]?
}

/// A CoMe-P candidate: the first layer's retention ratio r (the second keeps 1 − r) and
/// the calibration perplexity of the model merged with it.
public struct RatioCandidate: Sendable, Codable {
    public let ratio: Double
    public let perplexity: Double
}

/// CoMe: calibrate, merge the window with the smallest SBI, repeat (Alg. 1); or merge one
/// given window (`merge --layers`).
public final class CoMePruner {
    public struct Options: Sendable {
        /// Layers merged per step (m + 1).
        public var mergeItem = 2
        public var p: Double = 1
        public var rho: Double?
        public var ratios: [Double]?
        public var norms: ConcatenationMerge.NormRule = .mean
        public var skipMetric: SkipMetric = .cosine
        /// Windows touching an already-merged layer wait until no other window is left.
        public var withoutRepeat = false
        /// Resume each round from the cached states at the merge point (off: from the embeddings).
        public var resume = true
        /// CoMe-P (Alg. 2): search the first layer's ratio over {0, 1/n, …, 1} by
        /// calibration perplexity instead of the BI heuristic (2-layer windows).
        public var posteriorGranularity: Int?
        public var memoryBudget = 2 << 30
        public init() {}
    }

    public let checkpoint: Checkpoint
    public let calibration: CalibrationSet
    public let options: Options
    public let executor: StreamingExecutor
    public private(set) var stack: LayerStack
    public private(set) var steps: [MergeStep] = []
    /// Statistics of the most recent calibration (of the stack before the last merge).
    public private(set) var statistics: LayerStatistics?
    /// Input states of layer b, for every boundary b still valid.
    private var boundaries: [Int: HiddenStates] = [:]

    public init(checkpoint: Checkpoint, calibration: CalibrationSet, options: Options) throws {
        self.checkpoint = checkpoint
        self.calibration = calibration
        self.options = options
        executor = try StreamingExecutor(checkpoint: checkpoint, memoryBudget: options.memoryBudget)
        stack = LayerStack(layerCount: checkpoint.config.numHiddenLayers)
    }

    public var layerForwards: Int { executor.layerForwards }

    /// Runs calibration over the current stack from layer `from` to `to` (exclusive),
    /// caching each boundary, and returns the statistics (earlier layers reused).
    public func calibrate(from: Int, to: Int? = nil, windowSize: Int, progress: ((Int, Int) -> Void)? = nil) throws -> LayerStatistics {
        let end = to ?? stack.count
        if boundaries[0] == nil {
            boundaries[0] = try executor.embed(calibration.windows).copy(memoryBudget: 0)
        }
        // Earlier statistics are reusable only for the same window size; start from the
        // nearest cached boundary at or before the requested layer.
        let requested = statistics?.windowSize == windowSize ? from : 0
        let start = boundaries.keys.filter { $0 <= requested }.max() ?? 0
        let states = try boundaries[start]!.copy(memoryBudget: options.memoryBudget)
        let collector = StatisticsCollector(config: checkpoint.config, windowSize: windowSize, metric: options.skipMetric,
                                            firstLayer: start)
        let stack = self.stack, checkpoint = self.checkpoint
        executor.layerWeights = { i in
            let w = try stack.weights(i, checkpoint: checkpoint)
            collector.prepare(layer: i, weights: w)
            return w
        }
        executor.layerCount = end
        try executor.run(states, layers: start..<end, observe: { collector.observe(layer: $0, $1) },
                         boundary: { [self] layer, s in
                             collector.finish(layer: layer)
                             if options.resume && layer + 1 < end { boundaries[layer + 1] = try s.copy(memoryBudget: 0) }
                         }, progress: { progress?($0 + 1, end) })
        let previous = start == 0 ? nil : statistics
        let stats = collector.statistics(layerCount: end, previous: previous)
        statistics = stats
        return stats
    }

    /// Merges the current layers `window` with ratios from `stats` (or the options').
    @discardableResult
    public func merge(window: Range<Int>, stats: LayerStatistics, ratios chosen: [Double]? = nil,
                      candidates: [RatioCandidate]? = nil) throws -> MergeStep {
        let bi = Array(stats.bi[window])
        let ratios = chosen ?? options.ratios ?? RetentionRatios.adjusted(bi: bi, p: options.p, rho: options.rho)
        let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
        let (merged, kept) = ConcatenationMerge.merge(
            layers, ratios: ratios, ffnScores: Array(stats.ffnSensitivity[window]),
            kvGroupScores: Array(stats.kvGroupScore[window]), config: checkpoint.config, norms: options.norms)
        let sbi = window.count == stats.windowSize && window.lowerBound < stats.sbi.count ? stats.sbi[window.lowerBound] : .nan
        let step = MergeStep(windowCurrent: Array(window), windowOriginal: window.map { Array(stack.originals($0)) },
                             sbi: sbi, bi: bi, ratios: ratios, kept: kept, mergedIndex: window.lowerBound,
                             candidates: candidates)
        apply(step, merged: merged)
        return step
    }

    private func apply(_ step: MergeStep, merged: DecoderLayerWeights) {
        let window = step.windowCurrent.first!..<(step.windowCurrent.last! + 1)
        stack.replace(window, with: merged)
        steps.append(step)
        // States entering layers up to the merge point are unchanged; later ones are stale.
        boundaries = boundaries.filter { $0.key <= window.lowerBound }
    }

    /// Re-applies recorded steps (from a manifest) without calibrating: each merge is
    /// rebuilt from the units it kept, so the stack is the one the steps produced.
    public func replay(_ recorded: [MergeStep]) throws {
        for step in recorded {
            let window = step.windowCurrent.first!..<(step.windowCurrent.last! + 1)
            guard window.upperBound <= stack.count, step.windowCurrent == Array(window),
                  window.map({ Array(stack.originals($0)) }) == step.windowOriginal else {
                throw SurgeryError.inconsistentSteps("step merging \(step.windowCurrent) does not fit the layers \(stack.count) left")
            }
            let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
            let merged = ConcatenationMerge.merge(layers, ratios: step.ratios, kept: step.kept,
                                                  config: checkpoint.config, norms: options.norms)
            apply(step, merged: merged)
        }
    }

    /// Alg. 2 (CoMe-P) for a 2-layer window: merge with r = i/n for i in 0...n (the first
    /// layer's ratio) and score each candidate model by calibration perplexity. Only the
    /// layers from the merge point on run, from the cached states entering the window.
    public func ratioCandidates(window: Range<Int>, stats: LayerStatistics, granularity n: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> [RatioCandidate] {
        precondition(window.count == 2 && n >= 1)
        let entry = try statesEntering(window.lowerBound)
        let stack = self.stack, checkpoint = self.checkpoint, first = window.lowerBound
        let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
        let targets = calibration.windows.map { Array($0.dropFirst()) + [-1] }
        var candidates: [RatioCandidate] = []
        for i in 0...n {
            let r = Double(i) / Double(n)
            let (merged, _) = ConcatenationMerge.merge(
                layers, ratios: [r, 1 - r], ffnScores: Array(stats.ffnSensitivity[window]),
                kvGroupScores: Array(stats.kvGroupScore[window]), config: checkpoint.config, norms: options.norms)
            let states = try entry.copy(memoryBudget: options.memoryBudget)
            // Candidate layer `first` is the merged one; later ones are the stack's, one up.
            executor.layerWeights = { $0 == first ? merged : try stack.weights($0 + 1, checkpoint: checkpoint) }
            try executor.run(states, layers: first..<(stack.count - 1))
            let (sum, count) = try executor.negativeLogLikelihood(states, targets: targets)
            candidates.append(RatioCandidate(ratio: r, perplexity: exp(sum / Double(count))))
            progress?(i + 1, n + 1)
        }
        return candidates
    }

    /// The states entering current layer `layer`: cached, or run from the nearest cache.
    private func statesEntering(_ layer: Int) throws -> HiddenStates {
        if let cached = boundaries[layer] { return cached }
        if boundaries[0] == nil {
            boundaries[0] = try executor.embed(calibration.windows).copy(memoryBudget: 0)
        }
        let start = boundaries.keys.filter { $0 <= layer }.max()!
        let states = try boundaries[start]!.copy(memoryBudget: 0)
        let stack = self.stack, checkpoint = self.checkpoint
        executor.layerWeights = { try stack.weights($0, checkpoint: checkpoint) }
        try executor.run(states, layers: start..<layer)
        boundaries[layer] = states
        return states
    }

    /// Alg. 1 (or Alg. 2 with `posteriorGranularity`): merge windows of `mergeItem`
    /// layers until `target` layers remain; `afterStep` sees each merge (to save it).
    public func prune(to target: Int, progress: ((String) -> Void)? = nil,
                      afterStep: ((MergeStep) throws -> Void)? = nil) throws {
        var resumeFrom = steps.last.map { max(0, $0.mergedIndex - (options.mergeItem - 1)) } ?? 0
        while stack.count > target {
            let size = min(options.mergeItem, stack.count - target + 1)
            let stats = try calibrate(from: options.resume ? resumeFrom : 0, windowSize: size)
            let window = chooseWindow(stats, size: size)
            var step: MergeStep
            if let n = options.posteriorGranularity, size == 2 {
                let candidates = try ratioCandidates(window: window, stats: stats, granularity: n) { i, total in
                    progress?("CoMe-P: window \(Array(window)), candidate \(i)/\(total)")
                }
                let best = candidates.min { $0.perplexity < $1.perplexity }!
                step = try merge(window: window, stats: stats, ratios: [best.ratio, 1 - best.ratio], candidates: candidates)
            } else {
                step = try merge(window: window, stats: stats)
            }
            try afterStep?(step)
            progress?("merged layers \(step.windowCurrent) (original \(step.windowOriginal.map { "\($0.first!)-\($0.last!)" }.joined(separator: ","))), SBI \(String(format: "%.4f", step.sbi)), ratios [\(step.ratios.map { String(format: "%.3f", $0) }.joined(separator: ", "))]; \(stack.count) layers")
            resumeFrom = max(0, window.lowerBound - (size - 1))
        }
    }

    /// ShortGPT, the plain-deletion baseline: one calibration, then remove the layers with
    /// the lowest BI (lower index first on ties) until `target` remain.
    public func removeLowestBI(to target: Int) throws -> [Int] {
        let stats = try calibrate(from: 0, windowSize: min(2, stack.count))
        let order = stats.bi.indices.sorted { stats.bi[$0] != stats.bi[$1] ? stats.bi[$0] < stats.bi[$1] : $0 < $1 }
        let removed = Array(order.prefix(stack.count - target)).sorted()
        stack.remove(Set(removed))
        return removed
    }

    /// The window with the smallest SBI; with `withoutRepeat`, windows containing a
    /// merged layer only when every window does.
    func chooseWindow(_ stats: LayerStatistics, size: Int) -> Range<Int> {
        var best: (score: Double, start: Int)?
        for start in stats.sbi.indices where start + size <= stack.count {
            let repeated = options.withoutRepeat && (start..<(start + size)).contains { stack.isMerged($0) }
            let score = repeated ? .infinity : stats.sbi[start]
            if best == nil || score < best!.score { best = (score, start) }
        }
        if best!.score == .infinity {
            let start = stats.sbi.indices.filter { $0 + size <= stack.count }.min { stats.sbi[$0] < stats.sbi[$1] }!
            return start..<(start + size)
        }
        return best!.start..<(best!.start + size)
    }
}
