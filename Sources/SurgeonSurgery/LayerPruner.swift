import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

/// A model under surgery: the layer stack, the calibration set, and the hidden states
/// cached at layer boundaries so that a change at layer l only reruns layers from l on.
/// CoMe (LayerPruner+CoMe.swift) and the baselines (LayerPruner+Baselines.swift) work on it.
public final class LayerPruner {
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
    public internal(set) var stack: LayerStack
    public internal(set) var steps: [MergeStep] = []
    /// Statistics of the most recent calibration (of the stack before the last merge).
    public private(set) var statistics: LayerStatistics?
    /// Input states of layer b, for every boundary b still valid.
    var boundaries: [Int: HiddenStates] = [:]

    public init(checkpoint: Checkpoint, calibration: CalibrationSet, options: Options) throws {
        self.checkpoint = checkpoint
        self.calibration = calibration
        self.options = options
        executor = try StreamingExecutor(checkpoint: checkpoint, memoryBudget: options.memoryBudget)
        stack = LayerStack(layerCount: checkpoint.config.numHiddenLayers)
    }

    public var layerForwards: Int { executor.layerForwards }

    /// About the most temporary disk a prune to `targetLayers` (and its healing) holds at
    /// once: the boundary caches and working copies of the calibration states, and every
    /// built layer as f32 (one per merge, plus one being refitted).
    public static func temporaryBytesNeeded(_ c: ModelConfig, windows: Int, length: Int, targetLayers: Int) -> Int {
        let states = windows * length * c.hiddenSize * 4
        let q = c.numAttentionHeads * c.headDim, kv = c.numKeyValueHeads * c.headDim
        let layer = 4 * (2 * c.hiddenSize * q + 2 * c.hiddenSize * kv + 3 * c.hiddenSize * c.intermediateSize)
        return states * (c.numHiddenLayers + 4) + layer * (c.numHiddenLayers - targetLayers + 1)
    }

    /// Runs calibration over the current stack from layer `from` to `to` (exclusive),
    /// caching each boundary, and returns the statistics (earlier layers reused).
    /// `windowStarts` limits SBI to the windows starting there (others are NaN).
    public func calibrate(from: Int, to: Int? = nil, windowSize: Int, windowStarts: Range<Int>? = nil,
                          progress: ((Int, Int) -> Void)? = nil) throws -> LayerStatistics {
        let end = to ?? stack.count
        if boundaries[0] == nil {
            boundaries[0] = try executor.embed(calibration.windows).copy(memoryBudget: 0)
        }
        // Earlier statistics are reusable only for the same window size; start from the
        // nearest cached boundary at or before the requested layer.
        let requested = statistics?.windowSize == windowSize ? from : 0
        var start = boundaries.keys.filter { $0 <= requested }.max() ?? 0
        // Windows that straddle `start` need the inputs of the layers just before it.
        let straddling = { (start: Int) in max(0, start - windowSize + 1)..<start }
        while start > 0 && straddling(start).contains(where: { boundaries[$0] == nil }) {
            start = boundaries.keys.filter { $0 < start }.max() ?? 0
        }
        let states = try boundaries[start]!.copy(memoryBudget: options.memoryBudget)
        let collector = StatisticsCollector(config: checkpoint.config, windowSize: windowSize, metric: options.skipMetric,
                                            firstLayer: start)
        collector.windowStarts = windowStarts
        for layer in straddling(start) { try collector.preloadInput(layer: layer, states: boundaries[layer]!) }
        let stack = self.stack, checkpoint = self.checkpoint
        try executor.run(states, layers: start..<end, weights: { try stack.weights($0, checkpoint: checkpoint) },
                         prepare: { collector.prepare(layer: $0, weights: $1) }, observe: { collector.observe(layer: $0, $1) },
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
        return try Profile.measure(.merge) {
            let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
            let (merged, kept) = ConcatenationMerge.merge(
                layers, ratios: ratios, ffnScores: Array(stats.ffnSensitivity[window]),
                kvGroupScores: Array(stats.kvGroupScore[window]), config: checkpoint.config, norms: options.norms)
            let sbi = window.count == stats.windowSize && window.lowerBound < stats.sbi.count ? stats.sbi[window.lowerBound] : .nan
            let step = MergeStep(windowCurrent: Array(window), windowOriginal: window.map { Array(stack.originals($0)) },
                                 sbi: sbi, bi: bi, ratios: ratios, kept: kept, mergedIndex: window.lowerBound,
                                 candidates: candidates)
            try apply(step, merged: merged)
            return step
        }
    }

    private func apply(_ step: MergeStep, merged: DecoderLayerWeights) throws {
        let window = step.windowCurrent.first!..<(step.windowCurrent.last! + 1)
        try stack.replace(window, with: merged)
        steps.append(step)
        // States entering layers up to the merge point are unchanged; later ones are stale.
        boundaries = boundaries.filter { $0.key <= window.lowerBound }
    }

    /// Re-applies recorded steps (from a manifest) without calibrating: each merge is
    /// rebuilt from the units it kept, so the stack is the one the steps produced.
    public func replay(_ recorded: [MergeStep]) throws {
        for step in recorded {
            try validate(step)
            let window = step.windowCurrent.first!..<(step.windowCurrent.last! + 1)
            let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
            let merged = ConcatenationMerge.merge(layers, ratios: step.ratios, kept: step.kept,
                                                  config: checkpoint.config, norms: options.norms)
            try apply(step, merged: merged)
        }
    }

    /// A recorded step must describe a merge of the current stack that can be rebuilt:
    /// adjacent current layers standing for the recorded originals, and kept units that
    /// exist and fill the merged layer exactly.
    private func validate(_ step: MergeStep) throws {
        let c = checkpoint.config
        let w = step.windowCurrent
        func fail(_ problem: String) -> SurgeryError {
            .inconsistentSteps("step merging \(w): \(problem)")
        }
        guard w.count >= 2, w.first! >= 0, w.last! < stack.count, w == Array(w.first!...w.last!) else {
            throw fail("not a window of adjacent layers among the \(stack.count) left")
        }
        guard w.map({ Array(stack.originals($0)) }) == step.windowOriginal else {
            throw fail("those layers stand for other original layers here")
        }
        guard step.ratios.count == w.count, step.kept.count == w.count else { throw fail("one ratio and unit set per layer expected") }
        let channels = step.kept.map(\.ffnChannels), groups = step.kept.map(\.kvGroups)
        guard channels.allSatisfy({ $0.allSatisfy { (0..<c.intermediateSize).contains($0) } }),
              channels.reduce(0, { $0 + $1.count }) == c.intermediateSize,
              groups.allSatisfy({ $0.allSatisfy { (0..<c.numKeyValueHeads).contains($0) } }),
              groups.reduce(0, { $0 + $1.count }) == c.numKeyValueHeads else {
            throw fail("its kept units do not fill a layer of this model")
        }
    }

    /// The states entering current layer `layer`: cached, or run from the nearest cache.
    func statesEntering(_ layer: Int) throws -> HiddenStates {
        if let cached = boundaries[layer] { return cached }
        if boundaries[0] == nil {
            boundaries[0] = try executor.embed(calibration.windows).copy(memoryBudget: 0)
        }
        let start = boundaries.keys.filter { $0 <= layer }.max()!
        let states = try boundaries[start]!.copy(memoryBudget: 0)
        let stack = self.stack, checkpoint = self.checkpoint
        try executor.run(states, layers: start..<layer, weights: { try stack.weights($0, checkpoint: checkpoint) })
        boundaries[layer] = states
        return states
    }

    /// A candidate model's final states: the calibration set from the states entering
    /// current layer `first`, through `weights(i)` for i in first..<end.
    func runCandidate(from first: Int, to end: Int,
                      weights: @escaping (Int) throws -> DecoderLayerWeights) throws -> HiddenStates {
        let states = try statesEntering(first).copy(memoryBudget: options.memoryBudget)
        try executor.run(states, layers: first..<end, weights: weights)
        return states
    }

    /// Perplexity of the calibration set given final states (every next token scored).
    func calibrationPerplexity(_ final: HiddenStates) throws -> Double {
        let targets = calibration.windows.map { Array($0.dropFirst()) + [-1] }
        let (sum, count) = try executor.negativeLogLikelihood(final, targets: targets)
        return exp(sum / Double(count))
    }

    /// Removes current layers and drops the cached states they invalidate.
    func removeLayers(_ indices: Set<Int>) {
        stack.remove(indices)
        if let first = indices.min() { boundaries = boundaries.filter { $0.key <= first } }
    }

    /// Replaces a window by a merged layer outside CoMe's steps (weight-sum baselines).
    func replaceLayers(_ window: Range<Int>, with merged: DecoderLayerWeights) throws {
        try stack.replace(window, with: merged)
        boundaries = boundaries.filter { $0.key <= window.lowerBound }
    }
}
