import Foundation
import FuzzSupport
import SurgeonModel

/// config.json, alone and as the config of a sound one-layer safetensors model: decoding,
/// the size caps, the layer count against the tensors, the integrity check.
func fuzzConfig(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = Scratch.fixture("fixtures/tiny/llama-gqa/model.safetensors", as: "model.safetensors")
    let path = Scratch.write(data, size, as: "config.json")
    guard (try? Checkpoint.loadConfig(path)) != nil, let checkpoint = try? Checkpoint.open(Scratch.folder) else { return 0 }
    _ = checkpoint.integrityProblems()
    _ = checkpoint.orderedTensors.count
    return 0
}

exit(runFuzzer { data, size in fuzzConfig(data ?? UnsafePointer(bitPattern: 1)!, size) })
