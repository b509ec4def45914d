import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

/// A distillation run's state on disk (`distill --save-every`), to resume from: one
/// safetensors file holding the pair layers' weights ("w.B.field") and the optimiser's
/// moments ("m.B.field", "v.B.field") in f32, with the data position, the loss curve so
/// far and an XXH3 of the tensor bytes in its metadata. `identity` ties it to one run's
/// teacher, student, text and options: a resume with anything else is refused.
public enum DistillationCheckpoint {
    static let metadataKey = "ckpt_surgeon.distill"

    struct Header: Codable {
        var identity: String
        var phase: Int
        var step: Int
        var trained: [Int]
        var optimizers: [Int: Int]
        var curve: [LossPoint]
        var finished: [PairTraining]
        var firstLosses: [Double]
        var payloadXxh3: String
    }

    public struct Invalid: Error, CustomStringConvertible {
        public let description: String
        init(_ path: String, _ problem: String) { description = "\(path): not a usable distill checkpoint: \(problem)" }
    }

    /// Writes `state` to `path` atomically.
    public static func write(_ state: Distiller.State, identity: String, to path: String) throws {
        var entries: [SafetensorsLayout.Entry] = [], payloads: [[Float]] = []
        func add(_ prefix: String, _ layer: Int, _ w: DecoderLayerWeights) {
            for field in w.fields {
                entries.append(.init(name: "\(prefix).\(layer).\(field)", dtype: .f32, shape: [w[field]!.count]))
                payloads.append(w[field]!)
            }
        }
        for (b, w) in state.trained.sorted(by: { $0.key < $1.key }) { add("w", b, w) }
        for (b, o) in state.optimizers.sorted(by: { $0.key < $1.key }) {
            add("m", b, o.m)
            add("v", b, o.v)
        }
        let digests = payloads.map { $0.withUnsafeBytes { XXH3Hasher.hash($0) } }
        let header = Header(identity: identity, phase: state.phase, step: state.step,
                            trained: state.trained.keys.sorted(), optimizers: state.optimizers.mapValues(\.steps),
                            curve: state.curve, finished: state.finished, firstLosses: state.firstLosses,
                            payloadXxh3: digest(digests))
        let json = String(decoding: try encoder.encode(header), as: UTF8.self)
        let out = try OutputFile(path: path)
        try out.write(SafetensorsLayout(entries: entries, metadata: [(metadataKey, json)]).headerBytes())
        for p in payloads { try p.withUnsafeBytes { try out.write($0) } }
        try out.commit()
    }

    /// Reads a checkpoint written by `write` for the run `identity`; `template(b)` gives
    /// student layer b's weights, whose fields and sizes every tensor must match.
    public static func read(_ path: String, identity: String, weightDecay: Float,
                            template: (Int) throws -> DecoderLayerWeights) throws -> Distiller.State {
        let file: SafetensorsFile
        do {
            file = try SafetensorsFile(path: path)
        } catch let error as FormatError {
            throw Invalid(path, error.problem)
        }
        guard let json = file.metadata.first(where: { $0.key == metadataKey })?.value,
              let header = try? decoder.decode(Header.self, from: Data(json.utf8)) else {
            throw Invalid(path, "no \(metadataKey) record in its metadata")
        }
        guard header.identity == identity else {
            throw Invalid(path, "it was saved by a run with another teacher, student, text or options")
        }
        var digests: [UInt64] = []
        let byName = Dictionary(file.tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        func load(_ prefix: String, _ layer: Int) throws -> DecoderLayerWeights {
            let like = try template(layer)
            var w = DecoderLayerWeights()
            w.sourceLayer = like.sourceLayer
            for field in like.fields {
                let name = "\(prefix).\(layer).\(field)"
                guard let t = byName[name], t.dtype == .f32, t.elementCount == like[field]!.count else {
                    throw Invalid(path, "tensor '\(name)' is missing or not F32 [\(like[field]!.count)]")
                }
                digests.append(XXH3Hasher.hash(t.bytes))
                let values = decodeF32(t)
                guard values.allSatisfy(\.isFinite) else { throw Invalid(path, "tensor '\(name)' holds non-finite values (the file is corrupt)") }
                w[field] = values
            }
            return w
        }
        var state = Distiller.State()
        state.phase = header.phase
        state.step = header.step
        state.curve = header.curve
        state.finished = header.finished
        state.firstLosses = header.firstLosses
        for b in header.trained { state.trained[b] = try load("w", b) }
        for (b, steps) in header.optimizers.sorted(by: { $0.key < $1.key }) {
            state.optimizers[b] = AdamW(m: try load("m", b), v: try load("v", b), steps: steps, weightDecay: weightDecay)
        }
        guard digest(digests) == header.payloadXxh3 else {
            throw Invalid(path, "its tensor bytes do not match the recorded XXH3 (the file is corrupt)")
        }
        guard header.step >= 0, header.phase >= 0 else { throw Invalid(path, "negative position") }
        return state
    }

    /// XXH3 of the tensors' own XXH3s, in file order.
    private static func digest(_ digests: [UInt64]) -> String {
        XXH3Hasher.hex(digests.map(\.littleEndian).withUnsafeBytes { XXH3Hasher.hash($0) })
    }

    private static var encoder: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = .sortedKeys
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }

    private static var decoder: JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }
}
