import Foundation
import FuzzSupport
import SurgeonEmit

/// surgery.json, as heal, distill, verify and prune --resume read it.
func fuzzManifest(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let bytes = Data(bytes: data, count: size)
    if let manifest = try? SurgeryManifest.decode(bytes, path: "surgery.json") {
        _ = manifest.distillationPairs.count
    }
    return 0
}

exit(runFuzzer { data, size in fuzzManifest(data ?? UnsafePointer(bitPattern: 1)!, size) })
