import Foundation
import FuzzSupport
import SurgeonFormats

/// A safetensors file, or (input starting with "{") a shard index beside one sound shard.
func fuzzSafetensors(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    if size > 0 && data[0] == UInt8(ascii: "{") {
        for shard in 1...3 {
            let name = "model-0000\(shard)-of-00003.safetensors"
            _ = Scratch.fixture("fixtures/tiny/llama-gqa-sharded/" + name, as: name)
        }
        let index = Scratch.write(data, size, as: "model.safetensors.index.json")
        if let sharded = try? ShardedSafetensors(indexPath: index) { _ = sharded.tensors.count }
    } else {
        let path = Scratch.write(data, size, as: "fuzz.safetensors")
        if let file = try? SafetensorsFile(path: path) { _ = file.tensors.map(\.dataRange) }
    }
    return 0
}

exit(runFuzzer { data, size in fuzzSafetensors(data ?? UnsafePointer(bitPattern: 1)!, size) })
