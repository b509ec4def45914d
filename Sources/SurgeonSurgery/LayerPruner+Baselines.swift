import Foundation
import SurgeonCompute
import SurgeonModel

/// The baselines CoMe is compared with (SPEC §5, paper appendix A): direct removal
/// (ShortGPT, Reverse, Magnitude(+), SLEB) and weight-sum merging (LaCo, MKA). Each
/// returns the original layers it removed or merged away, in the order it decided.
extension LayerPruner {
    /// ShortGPT: one calibration, then remove the layers with the lowest BI (lower index
    /// first on ties) until `target` remain.
    public func removeLowestBI(to target: Int) throws -> [Int] {
        let stats = try calibrate(from: 0, windowSize: min(2, stack.count))
        return removeLowest(stats.bi, eligible: Array(stats.bi.indices), to: target)
    }

    /// Reverse: remove the last layers.
    public func removeLast(to target: Int) -> [Int] {
        let removed = Array(target..<stack.count)
        removeLayers(Set(removed))
        return removed
    }

    /// Magnitude: remove the layers with the smallest Σ|w|. Magnitude+ (`protectEnds`)
    /// never removes the first four or the last two layers.
    public func removeLowestMagnitude(to target: Int, protectEnds: Bool) throws -> [Int] {
        let importance = try (0..<stack.count).map { LayerMagnitude.importance(try stack.weights($0, checkpoint: checkpoint)) }
        let eligible = (0..<stack.count).filter { !protectEnds || ($0 >= 4 && $0 < stack.count - 2) }
        guard eligible.count >= stack.count - target else {
            throw SurgeryError.unsupported("magnitude+ keeps the first 4 and last 2 layers, so it cannot remove \(stack.count - target) of \(stack.count)")
        }
        return removeLowest(importance, eligible: eligible, to: target)
    }

    private func removeLowest(_ score: [Double], eligible: [Int], to target: Int) -> [Int] {
        let order = eligible.sorted { score[$0] != score[$1] ? score[$0] < score[$1] : $0 < $1 }
        let removed = Array(order.prefix(stack.count - target)).sorted()
        removeLayers(Set(removed))
        return removed
    }

    /// SLEB: remove one layer at a time, the one whose removal leaves the lowest
    /// calibration perplexity. A candidate reruns only the layers after it, from the
    /// cached states entering it. `afterStep` sees the model after each removal.
    public func removeBySLEB(to target: Int, progress: ((String) -> Void)? = nil,
                             afterStep: ((Int) throws -> Void)? = nil) throws -> [Int] {
        var removed: [Int] = []
        while stack.count > target {
            let stack = self.stack, checkpoint = self.checkpoint
            var best: (perplexity: Double, layer: Int)?
            for l in 0..<stack.count {
                let final = try runCandidate(from: l, to: stack.count - 1) { try stack.weights($0 + 1, checkpoint: checkpoint) }
                let ppl = try calibrationPerplexity(final)
                if best == nil || ppl < best!.perplexity { best = (ppl, l) }
            }
            removed.append(stack.originals(best!.layer).lowerBound)
            removeLayers([best!.layer])
            try afterStep?(removed.count)
            progress?("SLEB: removed original layer \(removed.last!) (calibration ppl \(String(format: "%.3f", best!.perplexity))); \(self.stack.count) layers")
        }
        return removed
    }

    /// LaCo: RDSC merges (W₀ + Σ(Wᵢ − W₀)) accepted while the last layer's states keep a
    /// mean per-token cosine similarity above the threshold with the original model's.
    public func mergeByLaCo(to target: Int, parameters p: LaCoParameters,
                            progress: ((String) -> Void)? = nil) throws -> [ClosedRange<Int>] {
        let reference = try statesEntering(stack.count).copy(memoryBudget: 0)
        var threshold = p.threshold
        var merged: [ClosedRange<Int>] = []
        while stack.count > target {
            var l = max(stack.count - p.group, min(p.lowestLayer, stack.count - 2))
            while l >= p.lowestLayer && stack.count > target {
                let size = min(p.group, stack.count - target + 1, stack.count - l)
                guard size >= 2 else { l -= 1; continue }
                let window = l..<(l + size)
                let stack = self.stack, checkpoint = self.checkpoint
                let layer = try WeightSumMerge.merge(count: size, coefficients: WeightSumMerge.lacoCoefficients(count: size),
                                                     norms: .first) { try stack.weights(l + $0, checkpoint: checkpoint) }
                let final = try runCandidate(from: l, to: stack.count - size + 1) {
                    $0 == l ? layer : try stack.weights($0 + size - 1, checkpoint: checkpoint)
                }
                let similarity = try HiddenStates.meanRowCosine(final, reference)
                if similarity > threshold {
                    merged.append(stack.originals(l).lowerBound...stack.originals(l + size - 1).upperBound)
                    try replaceLayers(window, with: layer)
                    progress?("LaCo: merged original layers \(merged.last!) (similarity \(String(format: "%.4f", similarity)) > \(String(format: "%.2f", threshold))); \(self.stack.count) layers")
                    l -= p.interval
                } else {
                    l -= 1
                }
            }
            if stack.count > target {
                threshold -= p.relaxStep
                guard threshold > -1 else { throw SurgeryError.unsupported("LaCo found no merge to accept") }
                progress?("LaCo: sweep ended at \(stack.count) layers; threshold relaxed to \(String(format: "%.2f", threshold))")
            }
        }
        return merged
    }

    /// MKA with equal NPIB scores: fuse the last two layers, the shallower weighted
    /// e^0.5/(1 + e^0.5) ≈ 0.62, until `target` remain. The CoMe paper reports MKA's code
    /// computes the two layers' NPIB as ≈ 0.5 : 0.5; NPIB itself is not computed here.
    public func mergeByMKA(to target: Int) throws -> [ClosedRange<Int>] {
        var merged: [ClosedRange<Int>] = []
        while stack.count > target {
            let window = (stack.count - 2)..<stack.count
            let layers = try window.map { try stack.weights($0, checkpoint: checkpoint) }
            let layer = WeightSumMerge.merge(layers, coefficients: WeightSumMerge.mkaCoefficients(normalizedNPIB: 0.5),
                                             norms: .combined)
            merged.append(stack.originals(window.lowerBound).lowerBound...stack.originals(window.upperBound - 1).upperBound)
            try replaceLayers(window, with: layer)
        }
        return merged
    }
}

extension HiddenStates {
    /// Mean over every token of the cosine similarity between the rows of `a` and `b`.
    static func meanRowCosine(_ a: HiddenStates, _ b: HiddenStates) throws -> Double {
        precondition(a.sequences == b.sequences && a.length == b.length && a.width == b.width)
        var total = 0.0
        for s in 0..<a.sequences {
            let x = try a.read(sequence: s), y = try b.read(sequence: s)
            for r in 0..<a.length {
                var dot = 0.0, nx = 0.0, ny = 0.0
                for i in (r * a.width)..<((r + 1) * a.width) {
                    dot += Double(x[i] * y[i]); nx += Double(x[i] * x[i]); ny += Double(y[i] * y[i])
                }
                total += dot / max((nx * ny).squareRoot(), 1e-30)
            }
        }
        return total / Double(a.sequences * a.length)
    }
}
