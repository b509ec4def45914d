import SurgeonFormats
import SurgeonModel

/// What `--dtype` asks for.
public enum DTypeChoice: String, Sendable, CaseIterable {
    case keep, f32, f16, bf16, q8_0
}

/// The output formats.
public enum OutputFormat: String, Sendable, CaseIterable {
    case safetensors, gguf
}

extension DTypeChoice {
    /// The dtype a tensor is written in.
    ///
    /// safetensors cannot hold ggml block types, so `keep` decodes those to f32 (exact).
    /// GGUF follows llama.cpp's converter: 1-D tensors (norms, biases) are always F32, and
    /// Q8_0 applies to matrices whose rows are whole blocks (F16 otherwise).
    public func resolve(for tensor: CheckpointTensor, in format: OutputFormat) throws -> DType {
        let source = tensor.dtype
        guard source.isFloatingPoint else {
            if format == .gguf && source.ggmlType == nil {
                throw TensorCodec.Unsupported(description: "'\(tensor.name)': \(source.rawValue) cannot be stored in GGUF")
            }
            return source
        }
        switch format {
        case .safetensors:
            switch self {
            case .keep: return source.safetensorsName != nil ? source : .f32
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .q8_0: throw TensorCodec.Unsupported(description: "safetensors cannot hold Q8_0; use --to gguf")
            }
        case .gguf:
            if tensor.shape.count < 2 { return .f32 }
            switch self {
            case .keep: return source.ggmlType != nil ? source : .f32
            case .f32: return .f32
            case .f16: return .f16
            case .bf16: return .bf16
            case .q8_0: return tensor.shape.last! % 32 == 0 ? .q8_0 : .f16
            }
        }
    }
}
