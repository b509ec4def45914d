import Foundation
import SurgeonFormats
import SurgeonModel
import SurgeonSurgery

/// `surgery.json`: everything needed to reproduce, audit and distil a surgery result.
/// The schema is versioned (`schema`) and documented in the README.
public struct SurgeryManifest: Codable, Sendable {
    public static let schemaVersion = "ckpt-surgeon.surgery/1"

    public struct Tool: Codable, Sendable {
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

    public struct Calibration: Codable, Sendable {
        public var corpus: String
        public var corpusXxh3: String
        public var nsamples: Int
        public var seqlen: Int
        public var seed: UInt64
        public var corpusTokens: Int
    }

    public struct Method: Codable, Sendable {
        public init(name: String, targetLayers: Int? = nil, mergeItem: Int? = nil, p: Double? = nil, rho: Double? = nil,
                    ratios: [Double]? = nil, norms: String? = nil, skipMetric: String? = nil, withoutRepeat: Bool? = nil,
                    resume: Bool? = nil, granularity: Int? = nil, laco: LaCoParameters? = nil) {
            self.name = name
            self.targetLayers = targetLayers
            self.mergeItem = mergeItem
            self.p = p
            self.rho = rho
            self.ratios = ratios
            self.norms = norms
            self.skipMetric = skipMetric
            self.withoutRepeat = withoutRepeat
            self.resume = resume
            self.granularity = granularity
            self.laco = laco
        }

        public var name: String
        public var targetLayers: Int?
        public var mergeItem: Int?
        public var p: Double?
        public var rho: Double?
        public var ratios: [Double]?
        public var norms: String?
        public var skipMetric: String?
        public var withoutRepeat: Bool?
        public var resume: Bool?
        /// CoMe-P's search granularity n (ratios i/n).
        public var granularity: Int?
        public var laco: LaCoParameters?
    }

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
        public var format: String
        public var layers: Int
        public var files: [String]
        /// XXH3-64 of each output tensor's stored bytes, by stored name.
        public var tensors: [String: String]
    }

    public var schema = SurgeryManifest.schemaVersion
    public var tool: Tool
    public var source: Source
    public var calibration: Calibration?
    public var method: Method
    public var steps: [MergeStep]
    public var layers: [LayerProvenance]
    public var distillationPairs: [Pair]
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
    public static func ggufSummary(method: String, sourceLayers: Int,
                                   layers: [LayerProvenance]) -> [(key: String, value: GGUFValue)] {
        let k = "ckpt_surgeon.surgery"
        return [
            ("\(k).schema", .string(schemaVersion)),
            ("\(k).method", .string(method)),
            ("\(k).source_layers", .uint32(UInt32(sourceLayers))),
            ("\(k).layer_first", .array(.int32, layers.map { .int32(Int32($0.original[0])) })),
            ("\(k).layer_last", .array(.int32, layers.map { .int32(Int32($0.original[1])) })),
        ]
    }

    public var ggufSummary: [(key: String, value: GGUFValue)] {
        Self.ggufSummary(method: method.name, sourceLayers: source.layers, layers: layers)
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
    public static func make(toolVersion: String, command: [String], checkpoint: Checkpoint, calibration: CalibrationSet?,
                            method: Method, steps: [MergeStep], stack: LayerStack, format: OutputFormat,
                            hashes: [String: String], files: [String]) throws -> SurgeryManifest {
        let (layers, pairs) = provenance(stack)
        let sourceFiles = try tensorFiles(of: checkpoint.path)
        return SurgeryManifest(
            tool: Tool(version: toolVersion, command: command),
            source: Source(path: checkpoint.path, format: checkpoint.format.rawValue,
                           configXxh3: try configHash(of: checkpoint),
                           layers: checkpoint.config.numHiddenLayers, tensors: try SurgeryManifest.hashes(of: sourceFiles)),
            calibration: calibration.map {
                Calibration(corpus: $0.corpus, corpusXxh3: $0.corpusXXH3, nsamples: $0.nsamples, seqlen: $0.seqlen,
                            seed: $0.seed, corpusTokens: $0.corpusTokens)
            },
            method: method, steps: steps, layers: layers, distillationPairs: pairs,
            output: Output(format: format.rawValue, layers: stack.count, files: files, tensors: hashes))
    }
}

