import Foundation
import TestSupport
import XCTest
@testable import SurgeonFormats
@testable import SurgeonModel

final class QKPermutationTests: XCTestCase {
    func testMatchesConverterReshape() {
        // convert_hf_to_gguf: w.reshape(heads, 2, d/2, …).swapaxes(1, 2): with 2 heads of
        // head_dim 4, GGUF rows are HF rows 0,2,1,3 then 4,6,5,7.
        XCTAssertEqual(QKPermutation.hfRowsForGGUF(heads: 2, headDim: 4), [0, 2, 1, 3, 4, 6, 5, 7])
        XCTAssertEqual(QKPermutation.hfRowsForGGUF(heads: 1, headDim: 6), [0, 3, 1, 4, 2, 5])
    }

    func testInverse() {
        let forward = QKPermutation.hfRowsForGGUF(heads: 3, headDim: 64)
        let inverse = QKPermutation.ggufRowsForHF(heads: 3, headDim: 64)
        XCTAssertEqual(forward.indices.map { inverse[forward[$0]] }, Array(forward.indices))
        XCTAssertEqual(Set(forward), Set(0..<192))
    }
}

final class TensorNameTests: XCTestCase {
    func testEveryLayerNameRoundTrips() {
        let config = ModelConfig(modelType: "qwen3", hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 2,
                                 numAttentionHeads: 2, numKeyValueHeads: 1, rmsNormEps: 1e-6, ropeTheta: 1e6,
                                 maxPositionEmbeddings: 32, vocabSize: 10, tieWordEmbeddings: false,
                                 attentionBias: true, mlpBias: true)
        for family in ModelFamily.allCases {
            var names = TensorLayout.expectedTensors(config, family: family).map(\.name)
            if family.traits.fusesProjections {
                // Files hold the fused tensors, whose parts have no names of their own there.
                let parts = Set(LayerTensors.fused.flatMap(\.parts))
                let partNames = Set((0..<2).flatMap { l in LayerTensors.possible(in: family).filter { parts.contains($0.field) }
                    .map { TensorLayout.layerPrefix(l) + $0.hfSuffix } })
                XCTAssertTrue(partNames.allSatisfy { TensorNames.gguf(fromHF: $0, family: family) == nil })
                names = names.filter { !partNames.contains($0) }
                    + (0..<2).flatMap { l in LayerTensors.fused.map { TensorLayout.layerPrefix(l) + $0.hfSuffix } }
            }
            for name in names {
                guard let gguf = TensorNames.gguf(fromHF: name, family: family) else { return XCTFail("no GGUF name for \(name)") }
                XCTAssertEqual(TensorNames.hf(fromGGUF: gguf, family: family), name)
            }
        }
        XCTAssertEqual(TensorNames.gguf(fromHF: "model.layers.12.mlp.down_proj.weight", family: .llama), "blk.12.ffn_down.weight")
        XCTAssertEqual(TensorNames.gguf(fromHF: "model.layers.0.self_attn.q_norm.weight", family: .qwen3), "blk.0.attn_q_norm.weight")
        XCTAssertNil(TensorNames.gguf(fromHF: "model.layers.0.self_attn.rotary_emb.inv_freq", family: .llama))
        XCTAssertNil(TensorNames.hf(fromGGUF: "rope_freqs.weight", family: .llama))
    }
}

final class ModelConfigTests: XCTestCase {
    private func decode(_ json: String) throws -> ModelConfig {
        try JSONDecoder().decode(ModelConfig.self, from: Data(json.utf8))
    }

    /// Keys Gemma2Config and Phi3Config default are defaulted the same way; an explicit
    /// null is kept.
    func testFamilyConfigDefaults() throws {
        let base = #""hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 100"#
        let g = try decode("{\"model_type\": \"gemma2\", \(base)}")
        XCTAssertTrue(g.tieWordEmbeddings)
        XCTAssertEqual(g.headDim, 256)
        XCTAssertEqual(g.queryPreAttnScalar, 256)
        XCTAssertEqual(g.slidingWindow, 4096)
        XCTAssertEqual(g.attnLogitSoftcapping, 50)
        XCTAssertEqual(g.finalLogitSoftcapping, 30)
        XCTAssertEqual([0, 1, 2, 3].map(g.isSlidingLayer), [true, false, true, false])
        let typed = try decode("{\"model_type\": \"gemma2\", \(base), \"layer_types\": [\"full_attention\", \"sliding_attention\"], \"final_logit_softcapping\": null}")
        XCTAssertEqual([0, 1].map(typed.isSlidingLayer), [false, true])
        XCTAssertNil(typed.finalLogitSoftcapping, "an explicit null is no cap")
        let p = try decode("{\"model_type\": \"phi3\", \(base)}")
        XCTAssertFalse(p.tieWordEmbeddings)
        XCTAssertEqual(p.originalMaxPositionEmbeddings, 4096)
        XCTAssertEqual(p.headDim, 16)
        let l = try decode("{\"model_type\": \"llama\", \(base), \"sliding_window\": 8}")
        XCTAssertFalse(l.isSlidingLayer(0), "only families with sliding layers use the key")
    }

    func testDefaultsAndVariants() throws {
        let c = try decode(#"""
        {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 8, "vocab_size": 100, "eos_token_id": [1, 2],
         "rope_scaling": {"type": "linear", "factor": 2.0}}
        """#)
        XCTAssertEqual(c.numKeyValueHeads, 8, "MHA when num_key_value_heads is absent")
        XCTAssertEqual(c.headDim, 8)
        XCTAssertEqual(c.eosTokenIds, [1, 2])
        XCTAssertEqual(c.ropeScaling?.ropeType, "linear", "old 'type' key")
        XCTAssertFalse(c.tieWordEmbeddings)
        let q = try decode(#"""
        {"model_type": "qwen3", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 100, "eos_token_id": 5,
         "rope_scaling": {"rope_type": "llama3", "factor": 8, "low_freq_factor": 1, "high_freq_factor": 4,
                          "original_max_position_embeddings": 64}}
        """#)
        XCTAssertEqual(q.headDim, 32)
        XCTAssertEqual(q.eosTokenIds, [5])
        XCTAssertEqual(q.ropeScaling?.originalMaxPositionEmbeddings, 64)
        XCTAssertEqual(q.kvGroupSize, 2)
    }
}

final class CheckpointTests: XCTestCase {
    func testTinyFixturesOpenWithIntegrity() throws {
        let tiny = try TestPaths.requireTiny()
        let expected: [(String, ModelFamily, Int)] = [("llama-mha", .llama, 3), ("llama-gqa", .llama, 4),
                                                      ("qwen2", .qwen2, 3), ("qwen3", .qwen3, 2),
                                                      ("llama-gqa-sharded", .llama, 4)]
        for (name, family, layers) in expected {
            let c = try Checkpoint.open(tiny + "/" + name)
            XCTAssertEqual(c.family, family, name)
            XCTAssertEqual(c.config.numHiddenLayers, layers, name)
            XCTAssertEqual(c.integrityProblems(), [], name)
            XCTAssertEqual(c.unexpectedTensorNames(), [], name)
        }
        let qwen2 = try Checkpoint.open(tiny + "/qwen2")
        XCTAssertNotNil(qwen2.tensor("model.layers.0.self_attn.q_proj.bias"))
        let qwen3 = try Checkpoint.open(tiny + "/qwen3")
        XCTAssertEqual(qwen3.tensor("model.layers.1.self_attn.q_norm.weight")?.shape, [32])
    }

    func testShardedEqualsSingle() throws {
        let tiny = try TestPaths.requireTiny()
        let single = try Checkpoint.open(tiny + "/llama-gqa")
        let sharded = try Checkpoint.open(tiny + "/llama-gqa-sharded")
        XCTAssertEqual(Set(single.tensors.map(\.name)), Set(sharded.tensors.map(\.name)))
        for t in single.tensors {
            XCTAssertEqual(Array(t.stored.bytes), Array(sharded.tensor(t.name)!.stored.bytes), t.name)
        }
    }

    /// The converter-style GGUF of llama-gqa, read back in HF layout, equals the HF weights.
    func testGGUFReadsBackInHFLayout() throws {
        let tiny = try TestPaths.requireTiny()
        let hf = try Checkpoint.open(tiny + "/llama-gqa")
        let gguf = try Checkpoint.open(tiny + "/gguf/llama-gqa.f32.gguf")
        XCTAssertEqual(gguf.config.numKeyValueHeads, 2)
        XCTAssertEqual(gguf.config.headDim, 8)
        XCTAssertTrue(gguf.config.tieWordEmbeddings)
        XCTAssertEqual(gguf.integrityProblems(), [])
        for t in hf.tensors {
            XCTAssertEqual(gguf.tensor(t.name)!.decodeF32(), t.decodeF32(), t.name)
        }
    }

    func testMissingConfigAndUnsupportedFamilyAreTypedErrors() throws {
        let malformed = TestPaths.malformed
        for (folder, keyword) in [("hf-missing-config", "config.json"), ("hf-unsupported-arch", "unsupported"),
                                  ("hf-shard-missing-file", "model-00002-of-00002.safetensors")] {
            XCTAssertThrowsError(try Checkpoint.open(malformed + "/" + folder)) { error in
                XCTAssertTrue((error as? FormatError)?.description.contains(keyword) ?? false, "\(folder): \(error)")
            }
        }
        let missing = try Checkpoint.open(malformed + "/hf-missing-tensor")
        XCTAssertEqual(missing.integrityProblems(), ["missing tensor 'model.layers.0.mlp.down_proj.weight'"])
    }
}

final class TokenizerFilesTests: XCTestCase {
    func testPreTokenizerJSONIsRecognisedAgain() throws {
        for kind in PreTokenizerKind.allCases {
            let object = try JSONSerialization.jsonObject(with: Data(kind.tokenizerJSON.utf8))
            XCTAssertEqual(PreTokenizerKind.detect(object), kind)
        }
    }

    func testTokenizerFromFolderRoundTripsThroughGGUFKeys() throws {
        let tiny = try TestPaths.requireTiny()
        let c = try Checkpoint.open(tiny + "/llama-mha")
        let t = try TokenizerFiles.ggufTokenizer(folder: tiny + "/llama-mha", vocabSize: c.config.vocabSize, configIds: c.config)
        XCTAssertEqual(t.tokens.count, c.config.vocabSize)
        XCTAssertEqual(t.pre, "gpt-2")
        XCTAssertEqual(t.tokenTypes[0], .control)
        XCTAssertEqual(t.token(t.eosId), "<|endoftext|>")
        let json = try TokenizerFiles.tokenizerJSON(t)
        let parsed = try JSONSerialization.jsonObject(with: Data(json.utf8)) as! [String: Any]
        let vocab = (parsed["model"] as! [String: Any])["vocab"] as! [String: Int]
        XCTAssertEqual(vocab.count, t.tokens.count)
        XCTAssertEqual((parsed["model"] as! [String: Any])["merges"] as? [String], t.merges)
    }
}

final class LayerTableTests: XCTestCase {
    /// Every field has one row per family, and each family's layer is the table filtered by
    /// presence: LLaMA has no biases or q/k norms, Qwen2 adds q/k/v biases, Qwen3 the q/k
    /// norms, Gemma 2 four norms, its MLP norm under another name.
    func testEveryFieldHasARowAndFamiliesSelectTheirs() {
        for family in ModelFamily.allCases {
            let rows = LayerTensors.possible(in: family)
            for field in LayerField.allCases {
                XCTAssertLessThanOrEqual(rows.filter { $0.field == field }.count, 1, "\(family) \(field)")
            }
            XCTAssertEqual(Set(rows.map(\.hfSuffix)).count, rows.count, "\(family): one field per HF name")
        }
        let c = ModelConfig(modelType: "llama", hiddenSize: 8, intermediateSize: 16, numHiddenLayers: 1,
                            numAttentionHeads: 2, numKeyValueHeads: 1, rmsNormEps: 1e-6, ropeTheta: 1e4,
                            maxPositionEmbeddings: 32, vocabSize: 10, tieWordEmbeddings: true)
        let fields = { (f: ModelFamily) in Set(LayerTensors.present(c, family: f).map(\.field)) }
        let core: Set<LayerField> = [.inputNorm, .q, .k, .v, .o, .mlpNorm, .gate, .up, .down]
        XCTAssertEqual(fields(.llama), core)
        XCTAssertEqual(fields(.qwen2), core.union([.qBias, .kBias, .vBias]))
        XCTAssertEqual(fields(.qwen3), core.union([.qNorm, .kNorm]))
        XCTAssertEqual(fields(.gemma2), core.union([.attentionOutputNorm, .mlpOutputNorm]))
        XCTAssertEqual(TensorNames.gguf(fromHF: "model.layers.2.post_attention_layernorm.weight", family: .gemma2),
                       "blk.2.post_attention_norm.weight")
        XCTAssertEqual(TensorNames.gguf(fromHF: "model.layers.2.post_attention_layernorm.weight", family: .llama),
                       "blk.2.ffn_norm.weight")
        XCTAssertEqual(TensorNames.hf(fromGGUF: "blk.2.ffn_norm.weight", family: .gemma2),
                       "model.layers.2.pre_feedforward_layernorm.weight")
        XCTAssertEqual(LayerTensors.present(c, family: .llama).first { $0.field == .o }!.shape(c), [8, 8])
    }

    func testGGUFArchitecturesComeFromTheTraits() {
        XCTAssertEqual(ModelFamily(ggufArchitecture: "llama"), .llama, "Mistral GGUFs read as LLaMA")
        XCTAssertEqual(ModelFamily(ggufArchitecture: "qwen3"), .qwen3)
        XCTAssertNil(ModelFamily(ggufArchitecture: "gpt2"))
        XCTAssertEqual(ModelFamily.ggufArchitectures, ["llama", "qwen2", "qwen3", "gemma2", "phi3"])
    }
}
