import Foundation
import SurgeonCompute
import SurgeonModel

/// How Skip-Block Influence compares hidden states (SPEC §3).
public enum SkipMetric: String, Sendable, Codable, CaseIterable {
    /// The paper's SBI: 1 − mean over all tokens of cos(H^(l−1), H^(l+m)).
    case cosine
    /// The upstream code: arccos(cos)/π on the last token of each sample, averaged.
    case angularLastToken = "angular-last-token"
}

/// Per-layer calibration statistics, gathered in one streaming pass.
public struct LayerStatistics: Sendable, Codable {
    /// Block Influence of each layer.
    public var bi: [Double]
    /// Skip-Block Influence of each window of `windowSize` layers, by first layer.
    public var sbi: [Double]
    public var windowSize: Int
    public var skipMetric: SkipMetric
    /// s_i = E|x_i| · Σ_k |W_down[k, i]| for each intermediate channel, per layer.
    public var ffnSensitivity: [[Double]]
    /// The same at o_proj's input, per channel, per layer.
    public var attentionSensitivity: [[Double]]
    /// Mean attention sensitivity over each KV group's o_proj input channels, per layer.
    public var kvGroupScore: [[Double]]
}

/// Accumulates `LayerStatistics` from the executor's per-chunk activations.
///
/// SBI needs the input of layer l when layer l+m has run, so the inputs of the last m
/// layers are kept (one copy of the hidden states per pending window).
public final class StatisticsCollector {
    let config: ModelConfig
    let windowSize: Int
    let metric: SkipMetric
    let firstLayer: Int
    /// First SBI window gathered: before `firstLayer` when earlier inputs are preloaded.
    private(set) var firstWindow: Int
    /// Only the SBI of windows starting in this range is gathered (others are NaN), so
    /// only those windows' inputs are held; nil gathers all.
    public var windowStarts: Range<Int>?
    private(set) var bi: [Int: (sum: Double, count: Int)] = [:]
    private(set) var sbi: [Int: (sum: Double, count: Int)] = [:]
    private var ffnAbsSum: [Int: [Double]] = [:], attnAbsSum: [Int: [Double]] = [:]
    private var tokens: [Int: Int] = [:]
    /// Inputs of recent layers, by layer then chunk's first sequence.
    private var pendingInputs: [Int: [Int: [Float]]] = [:]
    /// Column L1 norms of down_proj and o_proj, per layer (set before each layer runs).
    var downColumnNorms: [Int: [Double]] = [:], outColumnNorms: [Int: [Double]] = [:]

    /// `firstLayer`: statistics are gathered from this layer on (earlier ones reused).
    public init(config: ModelConfig, windowSize: Int, metric: SkipMetric, firstLayer: Int = 0) {
        self.config = config
        self.windowSize = windowSize
        self.metric = metric
        self.firstLayer = firstLayer
        firstWindow = firstLayer
    }

    /// Supplies the input states of a layer before `firstLayer` (from a boundary cache), so
    /// the windows that start there and reach the recomputed layers are scored without
    /// running it again. Preload layers in ascending order, ending at `firstLayer − 1`.
    public func preloadInput(layer: Int, states: HiddenStates) throws {
        precondition(layer < firstLayer && layer > firstLayer - windowSize)
        try states.pass { chunk, buffer in
            pendingInputs[layer, default: [:]][chunk.lowerBound] =
                Array(UnsafeBufferPointer(start: buffer, count: chunk.count * states.length * states.width))
        }
        firstWindow = min(firstWindow, layer)
    }

    /// Σ_k |W[k, i]| for each column i of a row-major [rows × cols] matrix.
    static func columnL1(_ w: [Float], rows: Int, cols: Int) -> [Double] {
        var out = [Double](repeating: 0, count: cols)
        for r in 0..<rows {
            for c in 0..<cols { out[c] += Double(abs(w[r * cols + c])) }
        }
        return out
    }

    /// Records the weights the sensitivities of layer `layer` need.
    public func prepare(layer: Int, weights: DecoderLayerWeights) {
        let c = config
        Profile.measure(.statistics) {
            downColumnNorms[layer] = Self.columnL1(weights[.down]!, rows: c.hiddenSize, cols: c.intermediateSize)
            outColumnNorms[layer] = Self.columnL1(weights[.o]!, rows: c.hiddenSize, cols: c.numAttentionHeads * c.headDim)
        }
    }

    public func observe(layer: Int, _ a: LayerActivations) {
        let h = config.hiddenSize
        accumulateAbs(&ffnAbsSum[layer, default: [Double](repeating: 0, count: config.intermediateSize)], a.mlpIntermediate, width: config.intermediateSize)
        accumulateAbs(&attnAbsSum[layer, default: [Double](repeating: 0, count: config.numAttentionHeads * config.headDim)], a.attentionOutput,
                      width: config.numAttentionHeads * config.headDim)
        tokens[layer, default: 0] += a.rows
        // BI: cosine between this layer's input and output, every token.
        var sum = 0.0
        for r in 0..<a.rows { sum += cosine(a.input.baseAddress! + r * h, a.output.baseAddress! + r * h, h) }
        bi[layer, default: (0, 0)].sum += sum
        bi[layer, default: (0, 0)].count += a.rows
        // SBI of the window ending here, which starts at layer − windowSize + 1.
        let start = layer - windowSize + 1
        if windowStarts?.contains(layer) ?? true {
            pendingInputs[layer, default: [:]][a.firstSequence] = Array(a.input)
        }
        if start >= 0, let earlier = pendingInputs[start]?[a.firstSequence] {
            earlier.withUnsafeBufferPointer { e in
                let score = skipScore(e.baseAddress!, a.output.baseAddress!, rows: a.rows, length: a.sequenceLength)
                sbi[start, default: (0, 0)].sum += score.sum
                sbi[start, default: (0, 0)].count += score.count
            }
        }
    }

    /// Frees the inputs no window still needs once layer `layer` has finished.
    public func finish(layer: Int) {
        pendingInputs[layer - windowSize + 1] = nil
    }

    private func skipScore(_ before: UnsafePointer<Float>, _ after: UnsafePointer<Float>, rows: Int, length: Int) -> (sum: Double, count: Int) {
        let h = config.hiddenSize
        switch metric {
        case .cosine:
            var s = 0.0
            for r in 0..<rows { s += 1 - cosine(before + r * h, after + r * h, h) }
            return (s, rows)
        case .angularLastToken:
            var s = 0.0
            for last in stride(from: length - 1, to: rows, by: length) {
                s += acos(max(-1, min(1, cosine(before + last * h, after + last * h, h)))) / Double.pi
            }
            return (s, rows / length)
        }
    }

    private func accumulateAbs(_ sums: inout [Double], _ x: UnsafeBufferPointer<Float>, width: Int) {
        let rows = x.count / width
        sums.withUnsafeMutableBufferPointer { s in
            for r in 0..<rows {
                let row = x.baseAddress! + r * width
                for i in 0..<width { s[i] += Double(abs(row[i])) }
            }
        }
    }

    /// The statistics of layers `firstLayer..<layerCount`, merged into `previous` (which
    /// supplies everything before `firstLayer`).
    public func statistics(layerCount: Int, previous: LayerStatistics?) -> LayerStatistics {
        let c = config
        let g = c.numAttentionHeads / c.numKeyValueHeads
        var out = previous ?? LayerStatistics(bi: [], sbi: [], windowSize: windowSize, skipMetric: metric,
                                              ffnSensitivity: [], attentionSensitivity: [], kvGroupScore: [])
        out.bi = Array(out.bi.prefix(firstLayer))
        // Windows starting before firstWindow are reused: none of them reaches a layer
        // that changed (the caller starts at the merge point and preloads the inputs of
        // the windows that straddle it).
        out.sbi = Array(out.sbi.prefix(firstWindow))
        out.ffnSensitivity = Array(out.ffnSensitivity.prefix(firstLayer))
        out.attentionSensitivity = Array(out.attentionSensitivity.prefix(firstLayer))
        out.kvGroupScore = Array(out.kvGroupScore.prefix(firstLayer))
        for l in firstLayer..<layerCount {
            out.bi.append(1 - bi[l]!.sum / Double(bi[l]!.count))
            let n = Double(tokens[l]!)
            out.ffnSensitivity.append(zip(ffnAbsSum[l]!, downColumnNorms[l]!).map { $0 / n * $1 })
            let attention = zip(attnAbsSum[l]!, outColumnNorms[l]!).map { $0 / n * $1 }
            out.attentionSensitivity.append(attention)
            let groupWidth = g * c.headDim
            out.kvGroupScore.append((0..<c.numKeyValueHeads).map { j in
                attention[(j * groupWidth)..<((j + 1) * groupWidth)].reduce(0, +) / Double(groupWidth)
            })
        }
        for start in firstWindow..<max(firstWindow, layerCount - windowSize + 1) {
            out.sbi.append(sbi[start].map { $0.sum / Double($0.count) } ?? .nan)
        }
        return out
    }
}

/// cos(a, b) over `n` floats, in double precision.
func cosine(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Double {
    var dot = 0.0, na = 0.0, nb = 0.0
    for i in 0..<n {
        let x = Double(a[i]), y = Double(b[i])
        dot += x * y
        na += x * x
        nb += y * y
    }
    return dot / max((na * nb).squareRoot(), 1e-30)
}
