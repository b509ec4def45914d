import Foundation
import TestSupport
import XCTest
@testable import SurgeonEmit
@testable import SurgeonFormats
@testable import SurgeonModel

final class ShardPlanTests: XCTestCase {
    func testGreedyShardsAndNames() {
        let plan = ShardPlan(sizes: [40, 40, 40, 100, 10], maxShardBytes: 90)
        XCTAssertEqual(plan.shards, [[0, 1], [2], [3], [4]], "a tensor above the limit gets its own shard")
        XCTAssertEqual(plan.fileName(0), "model-00001-of-00004.safetensors")
        XCTAssertEqual(ShardPlan(sizes: [1, 2], maxShardBytes: 100).fileName(0), "model.safetensors")
    }

    func testByteSizes() {
        XCTAssertEqual(ByteSize.parse("500MB"), 500_000_000)
        XCTAssertEqual(ByteSize.parse("4GiB"), 4 << 30)
        XCTAssertEqual(ByteSize.parse("1.5kb"), 1500)
        XCTAssertEqual(ByteSize.parse("123"), 123)
        XCTAssertNil(ByteSize.parse("lots"))
        XCTAssertNil(ByteSize.parse("-5MB"))
    }
}

final class ConverterTests: XCTestCase {
    func testHFToGGUFToHFIsBitExact() throws {
        let tiny = try TestPaths.requireTiny()
        let dir = try TestPaths.temporaryDirectory()
        for name in ["llama-mha", "qwen2", "qwen3"] {
            let source = try Checkpoint.open(tiny + "/" + name)
            _ = try Converter.convert(source, to: dir + "/\(name).gguf", format: .gguf, dtype: .keep)
            let gguf = try Checkpoint.open(dir + "/\(name).gguf")
            XCTAssertEqual(gguf.config.numHiddenLayers, source.config.numHiddenLayers)
            _ = try Converter.convert(gguf, to: dir + "/\(name)-back", format: .safetensors, dtype: .keep)
            let back = try Checkpoint.open(dir + "/\(name)-back")
            for t in source.tensors {
                XCTAssertEqual(Array(back.tensor(t.name)!.stored.bytes), Array(t.stored.bytes), "\(name) \(t.name)")
            }
        }
    }

    func testLlamaQKRowsArePermutedInGGUF() throws {
        let tiny = try TestPaths.requireTiny()
        let dir = try TestPaths.temporaryDirectory()
        let source = try Checkpoint.open(tiny + "/llama-mha")
        _ = try Converter.convert(source, to: dir + "/m.gguf", format: .gguf, dtype: .keep)
        let file = try GGUFFile(path: dir + "/m.gguf")
        let stored = decodeF32(file.tensor(named: "blk.0.attn_q.weight")!)
        let hf = source.tensor("model.layers.0.self_attn.q_proj.weight")!.decodeF32()
        let rows = QKPermutation.hfRowsForGGUF(heads: 4, headDim: 16)
        for (ggufRow, hfRow) in rows.enumerated() {
            XCTAssertEqual(Array(stored[(ggufRow * 64)..<(ggufRow * 64 + 64)]), Array(hf[(hfRow * 64)..<(hfRow * 64 + 64)]))
        }
        XCTAssertEqual(decodeF32(file.tensor(named: "blk.0.attn_v.weight")!),
                       source.tensor("model.layers.0.self_attn.v_proj.weight")!.decodeF32(), "v is not permuted")
    }

    func testRefusesToOverwriteInputOrExistingOutput() throws {
        let tiny = try TestPaths.requireTiny()
        let dir = try TestPaths.temporaryDirectory()
        let source = try Checkpoint.open(tiny + "/qwen3")
        XCTAssertThrowsError(try Converter.convert(source, to: tiny + "/qwen3", format: .safetensors, dtype: .keep, replace: true))
        XCTAssertThrowsError(try Converter.convert(source, to: tiny, format: .safetensors, dtype: .keep, replace: true))
        _ = try Converter.convert(source, to: dir + "/out", format: .safetensors, dtype: .keep)
        XCTAssertThrowsError(try Converter.convert(source, to: dir + "/out", format: .safetensors, dtype: .keep))
        _ = try Converter.convert(source, to: dir + "/out", format: .safetensors, dtype: .f16, replace: true)
        XCTAssertEqual(try Checkpoint.open(dir + "/out").tensors.first?.dtype, .f16)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), ["out"], "no temporary leftovers")
    }

    func testFailedConversionLeavesNothing() throws {
        let tiny = try TestPaths.requireTiny()
        let dir = try TestPaths.temporaryDirectory()
        let source = try Checkpoint.open(tiny + "/qwen3")
        XCTAssertThrowsError(try Converter.convert(source, to: dir + "/out", format: .safetensors, dtype: .q8_0))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir), [])
    }

    func testShardedOutputReadsBack() throws {
        let tiny = try TestPaths.requireTiny()
        let dir = try TestPaths.temporaryDirectory()
        let source = try Checkpoint.open(tiny + "/llama-mha")
        _ = try Converter.convert(source, to: dir + "/sharded", format: .safetensors, dtype: .keep, maxShardBytes: 100_000)
        let files = try FileManager.default.contentsOfDirectory(atPath: dir + "/sharded")
        XCTAssertTrue(files.contains(ShardedSafetensors.indexFileName))
        XCTAssertGreaterThan(files.filter { $0.hasPrefix("model-") }.count, 2)
        let back = try Checkpoint.open(dir + "/sharded")
        for t in source.tensors {
            XCTAssertEqual(Array(back.tensor(t.name)!.stored.bytes), Array(t.stored.bytes), t.name)
        }
    }
}
