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
            for j in 0..<c.hiddenSize { w.v[r * c.hiddenSize + j] = 0 }
        }
        let shape = LayerShape(c), rope = RotaryEmbedding(config: c)
        var x = (0..<(8 * c.hiddenSize)).map { Float(($0 * 37) % 17) / 17 - 0.5 }
        var attention: [Float] = []
        x.withUnsafeMutableBufferPointer { buffer in
            DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: rope.tables(count: 8), x: buffer.baseAddress!,
                                 sequences: 1, length: 8, workspace: LayerWorkspace(),
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
