import Foundation
import FuzzSupport
import SurgeonModel

/// tokenizer.json: the check every command makes, the GGUF tokenizer built from it, and
/// encoding a short text with it.
func fuzzTokenizer(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    _ = Scratch.write(data, size, as: "tokenizer.json")
    _ = try? TokenizerFiles.checkTokenizerJSON(folder: Scratch.folder, embeddingRows: 64)
    if let tokenizer = try? TokenizerLoader.load(path: Scratch.folder) {
        _ = tokenizer.encodeWithSpecials("Hello, world! 123 héllo\n<|im_start|>")
    }
    return 0
}

exit(runFuzzer { data, size in fuzzTokenizer(data ?? UnsafePointer(bitPattern: 1)!, size) })
