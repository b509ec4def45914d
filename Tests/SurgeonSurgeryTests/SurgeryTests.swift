import XCTest
@testable import SurgeonCompute
@testable import SurgeonModel
@testable import SurgeonSurgery

/// A tiny GQA config (4 query heads in 2 KV groups, 8 FFN channels) and layers whose
/// every value says where it came from, so merges can be checked by reading them.
private let config = ModelConfig(modelType: "llama", hiddenSize: 4, intermediateSize: 8, numHiddenLayers: 3,
                                 numAttentionHeads: 4, numKeyValueHeads: 2, headDim: 2, rmsNormEps: 1e-5,
                                 ropeTheta: 10_000, maxPositionEmbeddings: 64, vocabSize: 16, tieWordEmbeddings: true)

private func layer(_ tag: Float) -> DecoderLayerWeights {
    func values(_ n: Int, _ offset: Float) -> [Float] { (0..<n).map { tag * 1000 + offset + Float($0) } }
    let h = config.hiddenSize, q = config.numAttentionHeads * config.headDim
    let kv = config.numKeyValueHeads * config.headDim, f = config.intermediateSize
    var w = DecoderLayerWeights()
    for (field, count, offset) in [(LayerField.inputNorm, h, 1), (.q, q * h, 100), (.k, kv * h, 200), (.v, kv * h, 300),
                                   (.o, h * q, 400), (.mlpNorm, h, 2), (.gate, f * h, 500), (.up, f * h, 600),
                                   (.down, h * f, 700)] as [(LayerField, Int, Float)] {
        w[field] = values(count, offset)
    }
    return w
}

final class WeightSumMergeTests: XCTestCase {
    func testLaCoIsTheFirstLayerPlusTheDifferences() {
        XCTAssertEqual(WeightSumMerge.lacoCoefficients(count: 3), [-1, 1, 1])
        let layers = [layer(1), layer(2), layer(3)]
        let m = WeightSumMerge.merge(layers, coefficients: WeightSumMerge.lacoCoefficients(count: 3), norms: .first)
        let gate = layers.map { $0[.gate]! }
        for i in gate[0].indices {
            XCTAssertEqual(m[.gate]![i], gate[0][i] + (gate[1][i] - gate[0][i]) + (gate[2][i] - gate[0][i]), accuracy: 1e-3)
        }
        XCTAssertEqual(m[.inputNorm], layers[0][.inputNorm], "LaCo keeps the first layer's norms")
    }

    func testMKAWeightsFromEqualNPIB() {
        let c = WeightSumMerge.mkaCoefficients(normalizedNPIB: 0.5)
        XCTAssertEqual(Double(c[0]), exp(0.5) / (1 + exp(0.5)), accuracy: 1e-7)
        XCTAssertEqual(c[0] + c[1], 1, accuracy: 1e-7)
        let m = WeightSumMerge.merge([layer(1), layer(2)], coefficients: c, norms: .combined)
        XCTAssertEqual(m[.inputNorm]![0], c[0] * layer(1)[.inputNorm]![0] + c[1] * layer(2)[.inputNorm]![0], accuracy: 1e-3)
    }

    func testMagnitudeSumsEveryParameter() {
        var w = layer(0)
        let expected = w.fields.map { w[$0]! }
            .reduce(0.0) { $0 + $1.reduce(0.0) { $0 + Double(abs($1)) } }
        XCTAssertEqual(LayerMagnitude.importance(w), expected)
        w[.qBias] = [-5, 5, 0, 0, 0, 0, 0, 0]
        XCTAssertEqual(LayerMagnitude.importance(w), expected + 10, "biases count too")
    }
}

final class ConcatenationReplayTests: XCTestCase {
    /// `--resume` rebuilds merges from the recorded units: that must give the same layer
    /// as merging from the scores that chose them.
    func testMergeFromKeptUnitsEqualsMergeFromScores() {
        let layers = [layer(1), layer(2)]
        let ffn: [[Double]] = [[5, 1, 7, 3, 2, 8, 6, 4], [1, 2, 3, 4, 5, 6, 7, 8]]
        let kv: [[Double]] = [[0.2, 0.9], [0.5, 0.1]]
        let (merged, kept) = ConcatenationMerge.merge(layers, ratios: [0.5, 0.5], ffnScores: ffn, kvGroupScores: kv,
                                                      config: config, norms: .mean)
        XCTAssertEqual(kept.map(\.ffnChannels.count).reduce(0, +), config.intermediateSize)
        XCTAssertEqual(kept.map(\.kvGroups.count).reduce(0, +), config.numKeyValueHeads)
        let replayed = ConcatenationMerge.merge(layers, ratios: [0.5, 0.5], kept: kept, config: config, norms: .mean)
        for field in [LayerField.q, .o, .down, .inputNorm] {
            XCTAssertEqual(replayed[field], merged[field], "\(field)")
        }
        // The top-scoring KV group of each layer is the one kept (group 1, then group 0).
        XCTAssertEqual(kept.map(\.kvGroups), [[1], [0]])
    }
}

final class ParallelChunkTests: XCTestCase {
    func testChunksCoverEveryIndexOnce() {
        let count = 100_003
        let hits = UnsafeMutablePointer<Int>.allocate(capacity: count)
        hits.initialize(repeating: 0, count: count)
        defer { hits.deallocate() }
        Kernels.parallelChunks(count, minimum: 1000) { range in
            for i in range { hits[i] += 1 }
        }
        XCTAssertTrue((0..<count).allSatisfy { hits[$0] == 1 })
    }

    func testRopeFreqsFactorsReproduceLlama3Scaling() {
        // What export writes as rope_freqs, divided out, gives the scaled frequencies.
        let s = RopeScaling(ropeType: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64)
        let factors = s.llama3FrequencyFactors(headDim: 16, theta: 500_000)!
        let plain = (0..<8).map { Float(1 / pow(500_000.0, Double(2 * $0) / 16)) }
        let scaled = RotaryEmbedding.scaled(plain, s)
        for i in 0..<8 { XCTAssertEqual(plain[i] / factors[i], scaled[i], accuracy: scaled[i] * 1e-6) }
        XCTAssertTrue(factors.contains(1) && factors.contains(8), "both bands are present")
    }
}

final class PruningMethodRegistryTests: XCTestCase {
    func testNamesAreUniqueAndResolve() {
        let names = PruningMethods.all.map(\.name)
        XCTAssertEqual(Set(names).count, names.count)
        for name in names { XCTAssertEqual(PruningMethods.named(name)?.name, name) }
        XCTAssertNil(PruningMethods.named("taylor"))
        XCTAssertEqual(PruningMethods.all.filter(\.resumable).map(\.name), ["come", "come-p"])
        XCTAssertEqual(PruningMethods.all.filter { !$0.calibrates }.map(\.name), ["reverse", "magnitude", "magnitude+", "mka"])
    }

    /// A saved step resumes only into a run that makes the same choices: the target depth
    /// and resuming at merge points may differ, nothing else.
    func testResumeComparesEverythingButTheDepth() throws {
        let come = try XCTUnwrap(PruningMethods.named("come"))
        var options = LayerPruner.Options()
        var record = come.record(options, PruningSettings(targetLayers: 21))
        XCTAssertTrue(record.choosesLike(come.record(options, PruningSettings(targetLayers: 24))))
        options.resume = false
        XCTAssertTrue(record.choosesLike(come.record(options, PruningSettings(targetLayers: 21))))
        options.p = 2
        XCTAssertFalse(record.choosesLike(come.record(options, PruningSettings(targetLayers: 21))))
        record.name = "come-p"
        XCTAssertFalse(record.choosesLike(come.record(LayerPruner.Options(), PruningSettings(targetLayers: 21))))
    }
}

final class DistillerScheduleTests: XCTestCase {
    /// Seven pairs get the paper's seven LLaMA-2-7b rates; other counts interpolate them
    /// log-linearly, first to last, scaled to the first rate asked for.
    func testPairRatesRescaleThePapersSchedule() {
        let seven = Distiller.pairRates(count: 7, first: 5e-4)
        for (a, b) in zip(seven, Distiller.paperPairRates) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        let two = Distiller.pairRates(count: 2, first: 1e-3)
        XCTAssertEqual(two[0], 1e-3, accuracy: 1e-15)
        XCTAssertEqual(two[1], 1e-3 / 50, accuracy: 1e-15)
        let four = Distiller.pairRates(count: 4, first: 5e-4)
        XCTAssertEqual(four[1], 1e-4, accuracy: 1e-12)  // at the paper's third position
        XCTAssertEqual(four[3], 1e-5, accuracy: 1e-12)
        XCTAssertEqual(Distiller.pairRates(count: 1, first: 3e-4)[0], 3e-4, accuracy: 1e-15)
        XCTAssertTrue(zip(four, four.dropFirst()).allSatisfy { $0 > $1 })
    }
}
