import Foundation
import TestSupport
import XCTest
@testable import SurgeonCompute
@testable import SurgeonModel

final class KernelTests: XCTestCase {
    func testRMSNormAndSoftmax() {
        let x: [Float] = [3, 4, 0, 0]
        var out = [Float](repeating: 0, count: 4)
        // mean(x²) = 25/4, so each value is divided by 2.5 (eps 0), then scaled by w.
        Kernels.rmsNorm(x, [1, 2, 1, 1], &out, rows: 1, n: 4, eps: 0)
        XCTAssertEqual(out, [1.2, 3.2, 0, 0])
        var row: [Float] = [0, log(3), 5, 7]
        Kernels.softmaxPrefix(&row, length: 2, width: 4)
        XCTAssertEqual(row[0], 0.25, accuracy: 1e-6)
        XCTAssertEqual(row[1], 0.75, accuracy: 1e-6)
        XCTAssertEqual(Array(row[2...]), [0, 0], "masked positions are zeroed")
    }

    func testLlama3RopeScalingBands() {
        // wavelengths shorter than original/high stay, longer than original/low are divided
        // by the factor, and the band between is interpolated.
        let s = RopeScaling(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64)
        let high: Float = 1, low: Float = 0.01, mid = Float(2 * Double.pi / 32)
        let scaled = RotaryEmbedding.scaled([high, low, mid], s)
        XCTAssertEqual(scaled[0], high)
        XCTAssertEqual(scaled[1], low / 8, accuracy: 1e-9)
        // wavelength 32: smooth = (64/32 - 1) / (4 - 1) = 1/3.
        XCTAssertEqual(scaled[2], (2.0 / 3) * mid / 8 + (1.0 / 3) * mid, accuracy: 1e-7)
    }
}

final class VectorMathTests: XCTestCase {
    /// Our vector exp against libm's double-precision exp over every float exponent the
    /// forward pass can meet, plus the clamped ends.
    func testExpMatchesLibmAcrossTheRange() {
        var worst = 0.0
        var x: Float = -87
        while x < 88 {
            let lanes = (0..<19).map { x + Float($0) * 1e-3 }
            let e = VectorMath.exp(lanes)
            // 19 values: a full 16-lane block and a tail; above 88 the clamp applies.
            for i in 0..<19 where lanes[i] <= 88 {
                let exact = exp(Double(lanes[i]))
                worst = max(worst, abs(Double(e[i]) - exact) / exact)
            }
            x += 0.0137
        }
        XCTAssertLessThan(worst, 3e-7, "relative error of the vector exp")
        let edges = VectorMath.exp([-.infinity, -1000, -87.3, 0, 1, 88, 1000, .infinity])
        XCTAssertEqual(edges[3], 1)
        XCTAssertEqual(Double(edges[4]), exp(1.0), accuracy: 3e-7 * exp(1.0))
        XCTAssertTrue(edges[0] >= 0 && edges[0] < 1e-37 && edges[1] < 1e-37, "below the range: about 0, never negative or NaN")
        XCTAssertTrue(edges[6].isFinite && edges[7].isFinite && edges[7] > 1e38, "above the range: large and finite")
    }

    /// The row reductions on lengths that are not multiples of the lane count (tails).
    func testReductionsMatchScalarLoops() {
        for n in [1, 7, 8, 9, 1023, 1031, 5000] {
            let row = (0..<n).map { Float(sin(Double($0) * 0.37) * 20) }
            let m = row.max()!
            XCTAssertEqual(VectorMath.maximum(row, count: n), m)
            let exact = row.reduce(0.0) { $0 + exp(Double($1 - m)) }
            XCTAssertEqual(VectorMath.sumExp(row, count: n, shift: m), exact, accuracy: 1e-6 * exact)
            XCTAssertEqual(Kernels.logSumExp(row, n: n), Double(m) + log(exact), accuracy: 1e-6)
            var soft = row
            Kernels.softmaxPrefix(&soft, length: n, width: n)
            for j in 0..<n {
                XCTAssertEqual(Double(soft[j]), exp(Double(row[j] - m)) / exact, accuracy: 1e-6)
            }
            var gate = row
            let up = row.map { $0 * 0.5 + 1 }
            Kernels.siluMul(&gate, up, count: n)
            for j in 0..<n {
                let g = Double(row[j]), silu = g / (1 + exp(-g)) * Double(up[j])
                XCTAssertEqual(Double(gate[j]), silu, accuracy: 1e-5 * max(1, abs(silu)))
            }
        }
    }
}

final class SpilledLayerTests: XCTestCase {
    /// A layer parked on disk reads back bit for bit, whole and a row range at a time,
    /// with its optional tensors (Qwen2's q/k/v biases) present and the rest absent.
    func testSpilledLayerReadsBackExactly() throws {
        let tiny = try TestPaths.requireTiny()
        let checkpoint = try Checkpoint.open(tiny + "/qwen2")
        let weights = try DecoderLayerWeights.load(from: checkpoint, layer: 1)
        let spilled = try SpilledLayer(weights)
        let back = try spilled.load()
        for field in LayerField.allCases {
            XCTAssertEqual(back[field], weights[field], "\(field)")
            XCTAssertEqual(spilled.count(field), weights[field]?.count)
        }
        XCTAssertNotNil(spilled.count(.qBias))
        XCTAssertNil(spilled.count(.oBias))
        var rows = [Float](repeating: 0, count: 2 * checkpoint.config.hiddenSize)
        let width = checkpoint.config.hiddenSize
        try rows.withUnsafeMutableBufferPointer { try spilled.read(.gate, (3 * width)..<(5 * width), into: $0.baseAddress!) }
        XCTAssertEqual(rows, Array(weights[.gate]![(3 * width)..<(5 * width)]))
    }
}

final class ExecutorTests: XCTestCase {
    private func tokens(_ vocab: Int, sequences: Int, length: Int) -> [[Int]] {
        (0..<sequences).map { s in (0..<length).map { (s * 131 + $0 * 17) % vocab } }
    }

    private func outputs(_ states: HiddenStates) throws -> [[Float]] {
        try (0..<states.sequences).map { try states.read(sequence: $0) }
    }

    func testSpilledStatesGiveIdenticalResults() throws {
        let tiny = try TestPaths.requireTiny()
        let checkpoint = try Checkpoint.open(tiny + "/llama-gqa")
        let input = tokens(checkpoint.config.vocabSize, sequences: 5, length: 24)
        let inMemory = try StreamingExecutor(checkpoint: checkpoint, chunkTokens: 48)
        let spilled = try StreamingExecutor(checkpoint: checkpoint, memoryBudget: 0, chunkTokens: 48)
        let a = try inMemory.embed(input), b = try spilled.embed(input)
        XCTAssertFalse(a.isSpilled)
        XCTAssertTrue(b.isSpilled)
        XCTAssertEqual(b.chunks.count, 3)
        try inMemory.run(a, layers: 0..<4)
        try spilled.run(b, layers: 0..<4)
        XCTAssertEqual(try outputs(a), try outputs(b))
    }

    func testResumeFromCachedBoundaryEqualsFullRun() throws {
        let tiny = try TestPaths.requireTiny()
        let checkpoint = try Checkpoint.open(tiny + "/qwen2")
        for budget in [1 << 30, 0] {
            let executor = try StreamingExecutor(checkpoint: checkpoint, memoryBudget: budget, chunkTokens: 32)
            let states = try executor.embed(tokens(checkpoint.config.vocabSize, sequences: 3, length: 16))
            var cached: HiddenStates?
            try executor.run(states, layers: 0..<3, boundary: { layer, s in
                if layer == 0 { cached = try s.copy() }
            })
            let full = try outputs(states)
            let resumed = try XCTUnwrap(cached)
            try executor.run(resumed, layers: 1..<3)
            XCTAssertEqual(try outputs(resumed), full, "budget \(budget)")
            XCTAssertEqual(executor.layerForwards, 5)
        }
    }

    func testObserverSeesEveryLayerAndChunk() throws {
        let tiny = try TestPaths.requireTiny()
        let checkpoint = try Checkpoint.open(tiny + "/qwen3")
        let executor = try StreamingExecutor(checkpoint: checkpoint, chunkTokens: 20)
        let states = try executor.embed(tokens(checkpoint.config.vocabSize, sequences: 4, length: 10))
        var seen: [Int: Int] = [:]
        try executor.run(states, layers: 0..<2, observe: { layer, a in
            seen[layer, default: 0] += a.rows
            XCTAssertEqual(a.attentionOutput.count, a.rows * checkpoint.config.numAttentionHeads * checkpoint.config.headDim)
            XCTAssertEqual(a.mlpIntermediate.count, a.rows * checkpoint.config.intermediateSize)
        })
        XCTAssertEqual(seen, [0: 40, 1: 40])
    }

    /// GQA: query head h must read KV head h / G. Zeroing one KV head's value rows must
    /// zero exactly the G query heads that read it.
    func testQueryHeadsReadTheirOwnKVHead() throws {
        let tiny = try TestPaths.requireTiny()
        let checkpoint = try Checkpoint.open(tiny + "/llama-gqa")
        let c = checkpoint.config
        var w = try DecoderLayerWeights.load(from: checkpoint, layer: 0)
        let kvHead = 1
        for r in (kvHead * c.headDim)..<((kvHead + 1) * c.headDim) {
            for j in 0..<c.hiddenSize { w[.v]![r * c.hiddenSize + j] = 0 }
        }
        let shape = LayerShape(c), rope = RotaryEmbedding(config: c)
        var x = (0..<(8 * c.hiddenSize)).map { Float(($0 * 37) % 17) / 17 - 0.5 }
        var attention: [Float] = []
        x.withUnsafeMutableBufferPointer { buffer in
            DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: rope.tables(count: 8), x: buffer.baseAddress!,
                                 lengths: [8], workspace: LayerWorkspace(),
                                 observe: { attention = Array($0.attentionOutput) })
        }
        let g = c.numAttentionHeads / c.numKeyValueHeads
        for h in 0..<c.numAttentionHeads {
            var zero = true
            for t in 0..<8 {
                let start: Int = (t * c.numAttentionHeads + h) * c.headDim
                for i in start..<(start + c.headDim) where attention[i] != 0 { zero = false }
            }
            XCTAssertEqual(zero, h / g == kvHead, "query head \(h)")
        }
    }
}

final class RidgeRegressionTests: XCTestCase {
    /// y = W·x + b exactly, over more rows than inputs: a tiny ridge recovers W and b.
    func testRecoversAnExactLinearMapWithItsIntercept() throws {
        let inputs = 6, outputs = 3, rows = 200
        var rng = SystemRandomNumberGenerator()
        let w = (0..<outputs * inputs).map { _ in Float.random(in: -1...1, using: &rng) }
        let b = (0..<outputs).map { _ in Float.random(in: -1...1, using: &rng) }
        let x = (0..<rows * inputs).map { _ in Float.random(in: -2...2, using: &rng) }
        var y = [Float](repeating: 0, count: rows * outputs)
        for r in 0..<rows {
            for o in 0..<outputs {
                y[r * outputs + o] = b[o] + (0..<inputs).reduce(0) { $0 + w[o * inputs + $1] * x[r * inputs + $1] }
            }
        }
        let zeros = [Float](repeating: 0, count: rows * outputs)
        let fit = RidgeRegression(inputs: inputs, outputs: outputs, intercept: true)
        // Two blocks of rows, to check that accumulation sums them.
        fit.add(x: x, target: y, minus: zeros, rows: 120)
        fit.add(x: Array(x[(120 * inputs)...]), target: Array(y[(120 * outputs)...]), minus: zeros, rows: 80)
        let solution = try fit.solve(ridge: 1e-12)
        XCTAssertEqual(solution.ridge, 1e-12)
        for (got, want) in zip(solution.weights, w) { XCTAssertEqual(got, want, accuracy: 1e-4) }
        for (got, want) in zip(solution.bias!, b) { XCTAssertEqual(got, want, accuracy: 1e-4) }
    }

    /// With fewer rows than inputs the system is singular at λ = 0-ish; the solve grows λ
    /// and says which it used. Inputs that are zero everywhere are an error.
    func testSingularSystemsFallBackAndZeroInputsFail() throws {
        let fit = RidgeRegression(inputs: 8, outputs: 1, intercept: false)
        let x: [Float] = (0..<16).map { Float($0 % 3) }
        fit.add(x: x, target: [1, 2], minus: [0, 0], rows: 2)
        let solution = try fit.solve(ridge: 1e-300)
        XCTAssertGreaterThan(solution.ridge, 1e-300)
        let zero = RidgeRegression(inputs: 4, outputs: 1, intercept: false)
        zero.add(x: [Float](repeating: 0, count: 8), target: [1, 1], minus: [0, 0], rows: 2)
        XCTAssertThrowsError(try zero.solve(ridge: 0.1))
    }
}
