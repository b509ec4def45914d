import Foundation
import SurgeonCompute
import SurgeonModel

// Micro-benchmarks that need the library's own OpenBLAS linkage: plain sgemm at a
// model's projection shapes, and the decoder-layer forward on the same machine, so the
// two GFLOP/s figures can be compared in one run (bench/forward.sh drives this).
//
//   surgeon-bench sgemm MODEL [tokens]      sgemm GFLOP/s at MODEL's projection shapes
//   surgeon-bench layer MODEL [sequences]   decoder-layer forward GFLOP/s at ctx 512
//   surgeon-bench attention MODEL [length]  causal attention alone (from --profile's counters) at
//                                           one sequence of `length` tokens (default 2048)
//   surgeon-bench train MODEL               one layer's training step (forward with tape, backward
//                                           with weight gradients) GFLOP/s at ctx 512, and the
//                                           backward of a frozen layer (input gradient only)

func seconds(_ body: () -> Void) -> Double {
    let t = Date()
    body()
    return Date().timeIntervalSince(t)
}

/// (query, key) pairs a causal sequence of `length` tokens attends over: 1 + 2 + … + length.
func causalPairs(_ length: Int) -> Int { length * (length + 1) / 2 }

func bestOf(_ n: Int, _ body: () -> Void) -> Double {
    (0..<n).map { _ in seconds(body) }.min()!
}

let args = CommandLine.arguments
guard args.count >= 3, let checkpoint = try? Checkpoint.open(args[2]) else {
    FileHandle.standardError.write(Data("usage: surgeon-bench sgemm|layer|train MODEL [n]\n".utf8))
    exit(2)
}
let c = checkpoint.config
let s = LayerShape(c)

switch args[1] {
case "sgemm":
    let m = args.count > 3 ? Int(args[3])! : 2048
    // The projections of one layer: q, k, v, o, gate, up, down.
    let shapes = [(s.qWidth, s.hidden), (s.kvWidth, s.hidden), (s.kvWidth, s.hidden), (s.hidden, s.qWidth),
                  (s.intermediate, s.hidden), (s.intermediate, s.hidden), (s.hidden, s.intermediate)]
    var flops = 0.0, time = 0.0
    for (n, k) in shapes {
        let a = [Float](repeating: 0.5, count: m * k), b = [Float](repeating: 0.25, count: n * k)
        var out = [Float](repeating: 0, count: m * n)
        let t = bestOf(5) {
            BLAS.matmulTransposed(a, b, &out, m: m, n: n, k: k)
        }
        flops += 2.0 * Double(m * n * k)
        time += t
    }
    print(String(format: "sgemm %.1f GFLOP/s (M=%d, the 7 projection shapes of one layer, best of 5 each, %d threads)",
                 flops / time / 1e9, m, BLAS.threads))
case "layer":
    let sequences = args.count > 3 ? Int(args[3])! : 4
    let length = 512
    let weights = try DecoderLayerWeights.load(from: checkpoint, layer: 0)
    let rope = RotaryEmbedding(config: c)
    let tables = rope.tables(count: length)
    var x = (0..<(sequences * length * s.hidden)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
    let workspace = LayerWorkspace()
    let t = bestOf(3) {
        var y = x
        y.withUnsafeMutableBufferPointer {
            DecoderLayer.forward(weights, shape: s, rope: rope, ropeTables: tables, x: $0.baseAddress!,
                                 lengths: Array(repeating: length, count: sequences), workspace: workspace)
        }
    }
    x[0] = 0
    let tokens = Double(sequences * length)
    let projection = 2.0 * tokens * Double(s.hidden * (s.qWidth * 2 + s.kvWidth * 2) + 3 * s.hidden * s.intermediate)
    // QKᵀ and PV over the causal triangle, for every head (what --profile counts).
    let scored = causalPairs(length)
    let attention = 2.0 * 2.0 * Double(sequences) * Double(scored) * Double(s.headDim * s.heads)
    print(String(format: "layer forward %.1f GFLOP/s (%.1f ms for %d × %d tokens; projections %.0f%% of the FLOPs)",
                 (projection + attention) / t / 1e9, t * 1000, sequences, length, 100 * projection / (projection + attention)))
case "attention":
    let length = args.count > 3 ? Int(args[3])! : 2048
    let weights = try DecoderLayerWeights.load(from: checkpoint, layer: 0)
    let rope = RotaryEmbedding(config: c)
    let tables = rope.tables(count: length)
    let x = (0..<(length * s.hidden)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
    let workspace = LayerWorkspace()
    func forward() {
        var y = x
        y.withUnsafeMutableBufferPointer {
            DecoderLayer.forward(weights, shape: s, rope: rope, ropeTables: tables, x: $0.baseAddress!,
                                 lengths: [length], workspace: workspace)
        }
    }
    forward()
    Profile.reset()
    let runs = 5
    for _ in 0..<runs { forward() }
    let t = Profile.snapshot
    print(String(format: "attention %.1f GFLOP/s (%.1f ms of a %.1f ms layer forward at %d tokens, %d threads)",
                 t.attentionFlops / t[.attention] / 1e9, 1000 * t[.attention] / Double(runs),
                 1000 * t[.forward] / Double(runs), length, ComputeSettings.threads))
case "softmax":
    let length = args.count > 3 ? Int(args[3])! : 2048
    var buffer = (0..<(length * length)).map { Float(($0 * 7919) % 1000) / 100 - 5 }
    let t = bestOf(3) {
        buffer.withUnsafeMutableBufferPointer { b in
            for i in 0..<length { Kernels.softmaxPrefix(b.baseAddress! + i * length, length: i + 1, width: length) }
        }
    }
    print(String(format: "softmax of a causal %d² triangle: %.2f ms, %.2f ns per entry (one thread)", length, t * 1000, t * 1e9 / Double(length * (length + 1) / 2)))
case "train":
    let length = 512
    var weights = try DecoderLayerWeights.load(from: checkpoint, layer: 0)
    weights.sourceLayer = 0
    let rope = RotaryEmbedding(config: c)
    let tables = rope.tables(count: length)
    let x = (0..<(length * s.hidden)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
    let dy = (0..<(length * s.hidden)).map { Float(($0 * 104729) % 1000) / 1_000_000 - 0.0005 }
    let workspace = LayerWorkspace(), backward = BackwardWorkspace(), tape = LayerTape()
    func step(trains: Bool) {
        var y = x, d = dy
        var gradients: DecoderLayerWeights? = trains ? .zeros(like: weights) : nil
        y.withUnsafeMutableBufferPointer {
            DecoderLayer.forward(weights, shape: s, rope: rope, ropeTables: tables, x: $0.baseAddress!,
                                 lengths: [length], workspace: workspace, tape: tape)
        }
        d.withUnsafeMutableBufferPointer {
            DecoderLayer.backward(weights, shape: s, rope: rope, ropeTables: tables, tape: tape, dx: $0.baseAddress!,
                                  gradients: &gradients, workspace: backward)
        }
    }
    let trained = bestOf(3) { step(trains: true) }, frozen = bestOf(3) { step(trains: false) }
    let tokens = Double(length)
    let projection = 2.0 * tokens * Double(s.hidden * (s.qWidth * 2 + s.kvWidth * 2) + 3 * s.hidden * s.intermediate)
    let scored = causalPairs(length)
    // Forward: QKᵀ and PV. Backward: the scores again, then dP, dV, dQ and dK.
    let attention = 2.0 * Double(scored) * Double(s.headDim * s.heads)
    let trainFlops = 3 * projection + 7 * attention, frozenFlops = 2 * projection + 7 * attention
    print(String(format: "train step %.1f GFLOP/s (%.1f ms for %d tokens: forward + backward with weight gradients); "
                 + "frozen layer %.1f GFLOP/s (%.1f ms: forward + input gradient); tape %.1f MB per layer",
                 trainFlops / trained / 1e9, trained * 1000, length, frozenFlops / frozen / 1e9, frozen * 1000,
                 Double(tape.byteCount) / 1e6))
default:
    FileHandle.standardError.write(Data("unknown benchmark \(args[1])\n".utf8))
    exit(2)
}
