import Foundation
import FuzzSupport
import SurgeonFormats
import SurgeonModel

/// A GGUF file: header, metadata and tensor infos, then, where it reads as a model, its
/// config, integrity check, inspection report and tokenizer keys.
func fuzzGGUF(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let path = Scratch.write(data, size, as: "fuzz.gguf")
    guard (try? GGUFFile(path: path)) != nil, let checkpoint = try? Checkpoint.open(path) else { return 0 }
    _ = try? checkpoint.validate()
    _ = try? InspectionReport(checkpoint)
    if let tokenizer = try? TokenizerLoader.load(for: checkpoint) {
        _ = tokenizer.encodeWithSpecials("Hello, world! 123 héllo\n<|im_start|>")
    }
    return 0
}

exit(runFuzzer { data, size in fuzzGGUF(data ?? UnsafePointer(bitPattern: 1)!, size) })
