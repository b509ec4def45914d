/// Any file of tensors, read without interpreting it as a model: the tensors as stored
/// and the file's own metadata.
public struct TensorContainer: Sendable {
    public enum Kind: String, Sendable { case safetensors, gguf }

    public let path: String
    public let kind: Kind
    public let tensors: [TensorInfo]
    public let gguf: GGUFFile?
    public let safetensors: SafetensorsFile?

    public init(path: String) throws {
        let file = try MappedFile(path: path)
        self.path = path
        if file.count >= 4 && file.all.loadUnaligned(as: UInt32.self) == GGUFFile.magic || path.hasSuffix(".gguf") {
            let g = try GGUFFile(file: file)
            kind = .gguf
            gguf = g
            safetensors = nil
            tensors = g.tensors
        } else {
            let s = try SafetensorsFile(file: file)
            kind = .safetensors
            gguf = nil
            safetensors = s
            tensors = s.tensors
        }
    }
}
