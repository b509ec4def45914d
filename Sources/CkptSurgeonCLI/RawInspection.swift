import SurgeonFormats
import SurgeonModel

/// `inspect --raw`: a tensor file's contents as stored.
struct RawInspection: Encodable {
    struct Tensor: Encodable {
        let name: String, dtype: String, shape: [Int], bytes: Int, offset: Int, xxh3: String?
    }
    struct Entry: Encodable {
        let key: String, type: String, value: String
    }

    let path: String
    let format: String
    let version: UInt32?
    let alignment: Int?
    let metadata: [Entry]
    let tensors: [Tensor]

    init(_ c: TensorContainer, hashes: Bool) {
        path = c.path
        format = c.kind.rawValue
        version = c.gguf?.version
        alignment = c.gguf?.alignment
        if let g = c.gguf {
            metadata = g.metadata.map { Entry(key: $0.key, type: "\($0.value.type)", value: InspectionReport.describe($0.value)) }
        } else {
            metadata = (c.safetensors?.metadata ?? []).map { Entry(key: $0.key, type: "string", value: $0.value) }
        }
        tensors = c.tensors.map { t in
            let digest = hashes ? t.xxh3Hex() : nil
            return Tensor(name: t.name, dtype: t.dtype.ggmlName, shape: t.shape, bytes: t.byteCount,
                          offset: t.dataRange.lowerBound, xxh3: digest)
        }
    }

    var text: String {
        var out = "\(path)\n  format  \(format)\(version.map { " v\($0)" } ?? "")\(alignment.map { ", alignment \($0)" } ?? "")\n"
        if !metadata.isEmpty {
            out += "\nmetadata\n"
            for e in metadata { out += "  \(pad(e.key, 40)) \(pad(e.type, 8)) \(e.value.prefix(100))\n" }
        }
        out += "\n" + pad("tensor", 32) + "  dtype  " + pad("shape", 16) + "  bytes\n"
        for t in tensors {
            let shape = "[" + t.shape.map(String.init).joined(separator: ", ") + "]"
            out += pad(t.name, 32) + "  " + pad(t.dtype, 5) + "  " + pad(shape, 16) + "  " + byteText(t.bytes)
                + (t.xxh3.map { "  xxh3 \($0)" } ?? "") + "\n"
        }
        return out
    }
}
