import Foundation
import SurgeonCompute
import SurgeonModel

/// CoMe's progressive pruning: Alg. 1 (BI-heuristic ratios) and Alg. 2 (CoMe-P, ratios
/// searched by calibration perplexity).
extension LayerPruner {
    /// Alg. 1 (or Alg. 2 with `posteriorGranularity`): merge windows of `mergeItem`
    /// layers until `target` layers remain; `afterStep` sees each merge (to save it).
    public func prune(to target: Int, progress: ((String) -> Void)? = nil,
                      afterStep: ((MergeStep) throws -> Void)? = nil) throws {
        var resumeFrom = steps.last?.mergedIndex ?? 0
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
            resumeFrom = window.lowerBound
        }
    }


    /// Alg. 2 (CoMe-P) for a 2-layer window: merge with r = i/n for i in 0...n (the first
    /// layer's ratio) and score each candidate model by calibration perplexity. Only the
    /// layers from the merge point on run, from the cached states entering the window.
    public func ratioCandidates(window: Range<Int>, stats: LayerStatistics, granularity n: Int,
                                progress: ((Int, Int) -> Void)? = nil) throws -> [RatioCandidate] {
        precondition(window.count == 2 && n >= 1)
        let stack = self.stack, checkpoint = self.checkpoint, first = window.lowerBound
        var candidates: [RatioCandidate] = []
        for i in 0...n {
            let r = Double(i) / Double(n)
            // The window's layers are loaded afresh for each candidate and dropped once it
            // is merged, so they are not held while the candidate runs.
            var merged: DecoderLayerWeights? = ConcatenationMerge.merge(
                try window.map { try stack.weights($0, checkpoint: checkpoint) }, ratios: [r, 1 - r],
                ffnScores: Array(stats.ffnSensitivity[window]),
                kvGroupScores: Array(stats.kvGroupScore[window]), config: checkpoint.config, norms: options.norms).0
            // Candidate layer `first` is the merged one, handed over once and then dropped
            // (not kept for the rest of the run); later ones are the stack's, one up.
            let final = try runCandidate(from: first, to: stack.count - 1) {
                guard $0 == first else { return try stack.weights($0 + 1, checkpoint: checkpoint) }
                defer { merged = nil }
                return merged!
            }
            candidates.append(RatioCandidate(ratio: r, perplexity: try calibrationPerplexity(final)))
            progress?(i + 1, n + 1)
        }
        return candidates
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
