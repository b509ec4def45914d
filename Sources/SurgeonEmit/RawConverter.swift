import Foundation
import SurgeonFormats
import SurgeonModel

/// Converts a tensor file to safetensors or GGUF as plain tensors: same names, same order,
/// same metadata where the target can carry it, no model interpretation or permutation.
/// This is how arbitrary GGUF tensors (any quant type) get decoded to f32 for inspection.
public enum RawConverter {
    public static func convert(_ input: TensorContainer, to path: String, format: OutputFormat,
                               dtype: DTypeChoice, replace: Bool) throws -> Int {
        try Converter.refuseOverwritingInput(input.path, output: path)
        try OutputFile.refuseExisting(path, replace: replace)
        let writers = try input.tensors.map { info -> TensorWriter in
            TensorWriter(tensor: CheckpointTensor(name: info.name, stored: info),
                         outputDType: try dtype.resolveRaw(info, in: format))
        }
        let out = try OutputFile(path: path)
        switch format {
        case .safetensors:
            let metadata = input.safetensors?.metadata ?? []
            let layout = SafetensorsLayout(entries: writers.map {
                SafetensorsLayout.Entry(name: $0.name, dtype: $0.outputDType, shape: $0.shape)
            }, metadata: metadata)
            try out.write(layout.headerBytes())
            for w in writers { try w.write(to: out) }
        case .gguf:
            var metadata = input.gguf?.metadata ?? []
            if metadata.isEmpty { metadata = [("general.architecture", .string("none"))] }
            let layout = GGUFLayout(metadata: metadata, tensors: writers.map {
                GGUFLayout.Entry(name: $0.name, dtype: $0.outputDType, shape: $0.shape)
            })
            try out.write(layout.headerBytes())
            for (i, w) in writers.enumerated() {
                try out.writeZeros(layout.padding(before: i))
                try w.write(to: out)
            }
        }
        try out.commit()
        return out.bytesWritten
    }
}

extension DTypeChoice {
    /// As `resolve`, but with no model conventions: 1-D tensors follow `--dtype` too.
    func resolveRaw(_ info: TensorInfo, in format: OutputFormat) throws -> DType {
        let source = info.dtype
        if !source.isFloatingPoint { return source }
        switch (self, format) {
        case (.keep, .safetensors): return source.safetensorsName != nil ? source : .f32
        case (.keep, .gguf): return source.ggmlType != nil ? source : .f32
        case (.f32, _): return .f32
        case (.f16, _): return .f16
        case (.bf16, _): return .bf16
        case (.q8_0, .gguf): return info.rowLength % 32 == 0 ? .q8_0 : .f16
        case (.q8_0, .safetensors): throw TensorCodec.Unsupported(description: "safetensors cannot hold Q8_0; use --to gguf")
        }
    }
}
