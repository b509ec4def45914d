import Foundation
import SurgeonFormats
import SurgeonModel

/// Writes a checkpoint as a GGUF llama.cpp can load: `{arch}.*` hyperparameters, the
/// tokenizer, provenance, and tensors under GGUF names with LLaMA q/k rows permuted.
public struct GGUFExporter {
    public let checkpoint: Checkpoint
    public let tensors: [(ggufName: String, writer: TensorWriter)]
    /// The hyperparameters written (the input's, or a pruned model's).
    public var config: ModelConfig
    /// Extra keys (e.g. a surgery summary), appended after the standard ones.
    public var extraMetadata: [(key: String, value: GGUFValue)] = []

    /// `tensors` plus what llama.cpp needs and HF keeps in config.json: the llama3
    /// `rope_freqs` factors, first, as convert_hf_to_gguf.py writes them.
    public init(checkpoint: Checkpoint, tensors: [(ggufName: String, writer: TensorWriter)]) {
        self.checkpoint = checkpoint
        // Values llama.cpp expects shifted (Gemma's norms as 1 + w) are shifted here.
        let tensors = tensors.map { entry in
            var writer = entry.writer
            writer.addend = CheckpointTensor.ggufAddend(writer.name, family: checkpoint.family)
            return (ggufName: entry.ggufName, writer: writer)
        }
        config = checkpoint.config
        let c = checkpoint.config
        var extra: [(ggufName: String, writer: TensorWriter)] = []
        if !tensors.contains(where: { $0.ggufName == Self.ropeFreqsName }),
           let factors = c.ropeScaling?.llama3FrequencyFactors(headDim: c.headDim, theta: c.ropeTheta) {
            extra.append((Self.ropeFreqsName, TensorWriter(name: Self.ropeFreqsName, shape: [factors.count], values: factors, outputDType: .f32)))
        }
        // longrope (Phi-3): llama.cpp reads both factor sets as tensors, as its converter writes them.
        if let s = c.ropeScaling, let long = s.longFactor, let short = s.shortFactor,
           !tensors.contains(where: { $0.ggufName == Self.longropeNames.long }) {
            for (name, values) in [(Self.longropeNames.long, long), (Self.longropeNames.short, short)] {
                extra.append((name, TensorWriter(name: name, shape: [values.count], values: values.map { Float($0) }, outputDType: .f32)))
            }
        }
        self.tensors = extra + tensors
    }

    public static let ropeFreqsName = "rope_freqs.weight"
    public static let longropeNames = (long: "rope_factors_long.weight", short: "rope_factors_short.weight")

    /// The HF row order llama.cpp expects for `name` (q/k of LLaMA-family models).
    public static func ggufRowOrder(for name: String, config: ModelConfig, family: ModelFamily) -> [Int]? {
        QKPermutation.rows(of: name, config: config, family: family, .hfRowsForGGUF)
    }

    public var layout: GGUFLayout {
        get throws {
            GGUFLayout(metadata: try metadata(), tensors: tensors.map {
                GGUFLayout.Entry(name: $0.ggufName, dtype: $0.writer.outputDType, shape: $0.writer.shape)
            })
        }
    }

    public func write(to path: String, progress: ProgressHandler? = nil) throws {
        let layout = try self.layout
        let out = try OutputFile(path: path)
        try out.write(layout.headerBytes())
        let total = tensors.reduce(0) { $0 + $1.writer.outputByteCount }
        var done = 0
        for (i, entry) in tensors.enumerated() {
            try out.writeZeros(layout.padding(before: i))
            try entry.writer.write(to: out)
            done += entry.writer.outputByteCount
            progress?(done, total)
        }
        try out.commit()
    }

    public func metadata() throws -> [(key: String, value: GGUFValue)] {
        let c = config
        let arch = checkpoint.family.traits.ggufArchitecture
        var kv: [(key: String, value: GGUFValue)] = [
            ("general.architecture", .string(arch)),
            ("general.type", .string("model")),
        ]
        kv += provenance()
        kv += [
            ("\(arch).block_count", .uint32(UInt32(c.numHiddenLayers))),
            ("\(arch).context_length", .uint32(UInt32(c.maxPositionEmbeddings))),
            ("\(arch).embedding_length", .uint32(UInt32(c.hiddenSize))),
            ("\(arch).feed_forward_length", .uint32(UInt32(c.intermediateSize))),
            ("\(arch).attention.head_count", .uint32(UInt32(c.numAttentionHeads))),
            ("\(arch).attention.head_count_kv", .uint32(UInt32(c.numKeyValueHeads))),
            ("\(arch).rope.freq_base", .float32(Float(c.ropeTheta))),
            ("\(arch).attention.layer_norm_rms_epsilon", .float32(Float(c.rmsNormEps))),
        ]
        if c.headDim != c.hiddenSize / c.numAttentionHeads || checkpoint.family.traits.ggufAlwaysWritesKeyLength {
            kv.append(("\(arch).attention.key_length", .uint32(UInt32(c.headDim))))
            kv.append(("\(arch).attention.value_length", .uint32(UInt32(c.headDim))))
        }
        kv.append(("\(arch).rope.dimension_count", .uint32(UInt32(c.headDim))))
        kv.append(("\(arch).vocab_size", .uint32(UInt32(c.vocabSize))))
        if let scaling = c.ropeScaling, scaling.ropeType == "linear" || scaling.ropeType == "yarn", let factor = scaling.factor {
            kv.append(("\(arch).rope.scaling.type", .string(scaling.ropeType)))
            kv.append(("\(arch).rope.scaling.factor", .float32(Float(factor))))
        }
        if let s = c.ropeScaling, s.longFactor != nil {
            let rope = RopeScaling.longropeContext(c)
            kv.append(("\(arch).rope.scaling.original_context_length", .uint32(UInt32(rope.original))))
            kv.append(("\(arch).rope.scaling.attn_factor", .float32(Float(rope.attentionFactor))))
        }
        if checkpoint.family.traits.fusesProjections {
            // llama.cpp's phi3 tells Phi-4 (no window) apart by a window of 0.
            kv.append(("\(arch).attention.sliding_window", .uint32(UInt32(c.slidingWindow ?? 0))))
        }
        if let cap = c.attnLogitSoftcapping {
            kv.append(("\(arch).attn_logit_softcapping", .float32(Float(cap))))
        }
        if let cap = c.finalLogitSoftcapping {
            kv.append(("\(arch).final_logit_softcapping", .float32(Float(cap))))
        }
        if checkpoint.family.traits.slidingWindowOnEvenLayers, let window = c.slidingWindow {
            kv.append(("\(arch).attention.sliding_window", .uint32(UInt32(window))))
            // Per layer, since surgery can leave a pattern other than llama.cpp's default.
            kv.append(("\(arch).attention.sliding_window_pattern",
                       .array(.bool, (0..<c.numHiddenLayers).map { .bool(c.isSlidingLayer($0)) })))
        }
        kv.append(("general.file_type", .uint32(fileType())))
        if tensors.contains(where: { $0.writer.outputDType.isQuantized }) {
            kv.append(("general.quantization_version", .uint32(2)))
        }
        kv += try tokenizerMetadata()
        kv += extraMetadata
        return kv
    }

    /// `general.*` from a GGUF input (name, license, …), or a name from the folder.
    private func provenance() -> [(key: String, value: GGUFValue)] {
        let derived: Set<String> = ["general.architecture", "general.type", "general.file_type",
                                    "general.quantization_version", "general.alignment"]
        if let gguf = checkpoint.gguf {
            return gguf.metadata.filter { $0.key.hasPrefix("general.") && !derived.contains($0.key) }
        }
        let name = FilePath.name(of: checkpoint.path)
        return [("general.name", .string(name))]
    }

    private func tokenizerMetadata() throws -> [(key: String, value: GGUFValue)] {
        if let gguf = checkpoint.gguf {
            return gguf.metadata.filter { $0.key.hasPrefix("tokenizer.") }
        }
        guard let folder = checkpoint.folder else {
            warn("\(checkpoint.path): no tokenizer next to the weights; the GGUF will have no vocabulary")
            return []
        }
        return try TokenizerFiles.ggufTokenizer(folder: folder, vocabSize: checkpoint.config.vocabSize, configIds: checkpoint.config).metadata
    }

    /// llama.cpp's `llama_ftype` for the type most matrices are in.
    private func fileType() -> UInt32 {
        var bytes: [DType: Int] = [:]
        for t in tensors where t.writer.shape.count >= 2 {
            bytes[t.writer.outputDType, default: 0] += t.writer.outputByteCount
        }
        switch bytes.max(by: { $0.value < $1.value })?.key {
        case .f16: return 1
        case .q4_0: return 2
        case .q4_1: return 3
        case .q8_0: return 7
        case .q5_0: return 8
        case .q5_1: return 9
        case .q4_K: return 15
        case .q5_K: return 17
        case .q6_K: return 18
        case .bf16: return 32
        default: return 0
        }
    }
}
