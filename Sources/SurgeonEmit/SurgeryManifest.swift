import Foundation
import SurgeonFormats
import SurgeonModel

/// `surgery.json`: everything needed to reproduce, audit and distil a surgery result.
/// The schema is versioned (`schema`) and documented in the README.
public struct SurgeryManifest: Codable, Sendable {
    /// /2 added `healing` (and, later, the optional `distillation`); /1 manifests (no
    /// healing) read unchanged.
    public static let schemaVersion = "ckpt-surgeon.surgery/2"

    public struct Tool: Codable, Sendable {
        public init(version: String, command: [String]) {
            self.version = version
            self.command = command
        }

        public var name = "ckpt-surgeon"
        public var version: String
        public var command: [String]
    }

    public struct Source: Codable, Sendable {
        public var path: String
        public var format: String
        public var configXxh3: String
        public var layers: Int
        /// XXH3-64 of each source tensor's stored bytes, by stored name.
        public var tensors: [String: String]
    }

    /// The calibration text a surgery ran on.
    public typealias Calibration = CalibrationRecord

    /// The method and its parameters (each method fills in its own: `PruningMethod`).
    public typealias Method = MethodRecord

    /// Output layer `output` replaces original layers `original[0]...original[1]`.
    public struct LayerProvenance: Codable, Sendable {
        public var output: Int
        public var original: [Int]
    }

    public struct Pair: Codable, Sendable {
        /// Last original layer of a merged range (teacher side).
        public var a: Int
        /// The output layer standing for it (student side).
        public var b: Int
    }

    public struct Output: Codable, Sendable {
        public init(format: String, layers: Int, files: [String], tensors: [String: String]) {
            self.format = format
            self.layers = layers
            self.files = files
            self.tensors = tensors
        }

        public var format: String
        public var layers: Int
        public var files: [String]
        /// XXH3-64 of each output tensor's stored bytes, by stored name.
        public var tensors: [String: String]
    }

    /// What `heal` (or `prune --heal`) refitted, and on which calibration.
    public struct Healing: Codable, Sendable {
        public init(ridge: Double, layers: String, calibration: Calibration, refits: [LayerRefit], student: Student?) {
            self.ridge = ridge
            self.layers = layers
            self.calibration = calibration
            self.refits = refits
            self.student = student
        }

        /// Closed-form ridge least squares of each chosen layer's down_proj (SPEC §9).
        public var method = "ridge-down_proj"
        public var ridge: Double
        /// The layer selection asked for: merged, gaps or all.
        public var layers: String
        public var calibration: Calibration
        public var refits: [LayerRefit]
        /// The model that was healed, when it was read from disk (`heal`): its path and the
        /// output record of its own manifest.
        public var student: Student?
    }

    /// What `distill` trained (SPEC §7), on which text, and how the loss went.
    public struct Distillation: Codable, Sendable {
        public init(mode: String, loss: String, text: Calibration, tokens: Int, epochs: Int, batch: Int,
                    learningRates: [Double], recompute: Bool, pairs: [PairTraining], lossCurve: [LossPoint],
                    student: Student) {
            self.method = "come-" + mode
            self.mode = mode
            self.loss = loss
            self.text = text
            self.tokens = tokens
            self.epochs = epochs
            self.batch = batch
            self.learningRates = learningRates
            self.recompute = recompute
            self.pairs = pairs
            self.lossCurve = lossCurve
            self.student = student
        }

        /// come-sp (every merged layer at once) or come-mp (one pair at a time).
        public var method: String
        public var mode: String
        /// kl (symmetric KL over the hidden softmax) or mse.
        public var loss: String
        /// The training text: `nsamples` distinct windows of `seqlen` tokens.
        public var text: Calibration
        /// Training tokens per pass (mp: each pair's), and passes over the windows allowed.
        public var tokens: Int
        public var epochs: Int
        /// Windows per optimiser step (one micro-batch each, gradients summed).
        public var batch: Int
        public var optimizer = "adamw"
        public var weightDecay = 0.01
        public var schedule = "cosine"
        /// Peak rates: one for sp, one per pair (shallow to deep) for mp.
        public var learningRates: [Double]
        /// Whether the backward recomputed each layer's activations instead of keeping them.
        public var recompute: Bool
        public var pairs: [PairTraining]
        /// At most a few hundred points, evenly spaced in steps.
        public var lossCurve: [LossPoint]
        /// The model distilled: its path and the output record of its own manifest.
        public var student: Student
    }

    public struct Student: Codable, Sendable {
        public init(path: String, output: Output) {
            self.path = path
            self.output = output
        }

        public var path: String
        public var output: Output
    }

    public var schema = SurgeryManifest.schemaVersion
    public var tool: Tool
    public var source: Source
    public var calibration: Calibration?
    public var method: Method
    public var steps: [MergeStep]
    public var layers: [LayerProvenance]
    public var distillationPairs: [Pair]
    public var healing: Healing?
    public var distillation: Distillation?
    public var output: Output

    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try encoder.encode(self)
    }

    public static func decode(_ data: Data, path: String) throws -> SurgeryManifest {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        do {
            return try decoder.decode(SurgeryManifest.self, from: data)
        } catch {
            throw FormatError(.invalidHeader, path: path, "not a surgery manifest (\(SurgeryManifest.schemaVersion)): \(error)")
        }
    }

    /// Provenance and distillation pairs of a layer stack.
    public static func provenance(_ stack: LayerStack) -> ([LayerProvenance], [Pair]) {
        var layers: [LayerProvenance] = [], pairs: [Pair] = []
        for i in 0..<stack.count {
            let r = stack.originals(i)
            layers.append(LayerProvenance(output: i, original: [r.lowerBound, r.upperBound]))
            if stack.isMerged(i) { pairs.append(Pair(a: r.upperBound, b: i)) }
        }
        return (layers, pairs)
    }

    /// XXH3 of every tensor stored in a tensor file, by stored name.
    public static func hashes(of files: [String]) throws -> [String: String] {
        var out: [String: String] = [:]
        for file in files {
            for t in try TensorContainer(path: file).tensors {
                out[t.name] = t.xxh3Hex()
            }
        }
        return out
    }

    /// The tensor files of an output: the .gguf itself, or a folder's .safetensors files.
    public static func tensorFiles(of path: String) throws -> [String] {
        if !FilePath.isDirectory(path) { return [path] }
        return try FileManager.default.contentsOfDirectory(atPath: path).filter { $0.hasSuffix(".safetensors") }.sorted()
            .map { path + "/" + $0 }
    }

    /// Where the manifest of an output lives: inside a folder, beside a GGUF.
    public static func location(of output: String) -> String {
        FilePath.isDirectory(output) ? output + "/surgery.json"
            : (output.hasSuffix(".gguf") ? String(output.dropLast(5)) : output) + ".surgery.json"
    }
}

extension SurgeryManifest {
    /// A summary for GGUF metadata, so an exported model still says where its layers came
    /// from when the JSON is not beside it: output layer i replaces original layers
    /// `layer_first[i]...layer_last[i]`.
    /// With `healing`, also `ckpt_surgeon.healing.method`, `.ridge` and `.layers` (the
    /// output layers refitted).
    public static func ggufSummary(method: String, sourceLayers: Int, layers: [LayerProvenance],
                                   healing: Healing? = nil) -> [(key: String, value: GGUFValue)] {
        let k = "ckpt_surgeon.surgery"
        var summary: [(key: String, value: GGUFValue)] = [
            ("\(k).schema", .string(schemaVersion)),
            ("\(k).method", .string(method)),
            ("\(k).source_layers", .uint32(UInt32(sourceLayers))),
            ("\(k).layer_first", .array(.int32, layers.map { .int32(Int32($0.original[0])) })),
            ("\(k).layer_last", .array(.int32, layers.map { .int32(Int32($0.original[1])) })),
        ]
        if let healing {
            summary += [
                ("ckpt_surgeon.healing.method", .string(healing.method)),
                ("ckpt_surgeon.healing.ridge", .float32(Float(healing.ridge))),
                ("ckpt_surgeon.healing.layers", .array(.int32, healing.refits.map { .int32(Int32($0.layer)) })),
            ]
        }
        return summary
    }

    public var ggufSummary: [(key: String, value: GGUFValue)] {
        Self.ggufSummary(method: method.name, sourceLayers: source.layers, layers: layers, healing: healing)
    }

    /// Every way the tensors of `output` differ from this manifest's record of them (empty
    /// when they match): what `verify` prints.
    public func mismatches(of output: String) throws -> [String] {
        let actual = try Self.hashes(of: try Self.tensorFiles(of: output))
        return Self.mismatches(actual, expected: self.output.tensors)
    }

    /// Tensors missing from, differing from or extra to `expected`, by name.
    public static func mismatches(_ actual: [String: String], expected: [String: String]) -> [String] {
        var problems: [String] = []
        for (name, hash) in expected.sorted(by: { $0.key < $1.key }) {
            guard let got = actual[name] else { problems.append("missing tensor '\(name)'"); continue }
            if got != hash { problems.append("tensor '\(name)': xxh3 \(got), manifest says \(hash)") }
        }
        for name in actual.keys.sorted() where expected[name] == nil {
            problems.append("tensor '\(name)' is not in the manifest")
        }
        return problems
    }

    /// XXH3 of the source's config.json (or of its config, for a GGUF): what a resumed
    /// run checks it continues on the same model.
    public static func configHash(of checkpoint: Checkpoint) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let bytes = try checkpoint.configJSON ?? encoder.encode(checkpoint.config)
        return Array(bytes).withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }
    }

    /// The manifest fields every surgery command fills the same way.
    public static func make(toolVersion: String, command: [String], checkpoint: Checkpoint, calibration: CalibrationRecord?,
                            method: Method, steps: [MergeStep], stack: LayerStack, format: OutputFormat,
                            hashes: [String: String], files: [String], healing: Healing? = nil) throws -> SurgeryManifest {
        let (layers, pairs) = provenance(stack)
        let sourceFiles = try tensorFiles(of: checkpoint.path)
        return SurgeryManifest(
            tool: Tool(version: toolVersion, command: command),
            source: Source(path: checkpoint.path, format: checkpoint.format.rawValue,
                           configXxh3: try configHash(of: checkpoint),
                           layers: checkpoint.config.numHiddenLayers, tensors: try SurgeryManifest.hashes(of: sourceFiles)),
            calibration: calibration,
            method: method, steps: steps, layers: layers, distillationPairs: pairs, healing: healing,
            output: Output(format: format.rawValue, layers: stack.count, files: files, tensors: hashes))
    }
}

