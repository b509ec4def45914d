import Foundation
import SurgeonFormats
import SurgeonModel

/// Format and dtype conversion of a whole checkpoint, streaming one tensor at a time.
public enum Converter {
    public struct Summary: Sendable {
        public let outputPath: String
        public let format: OutputFormat
        public let tensorCount: Int
        public let bytesWritten: Int
        public let dtypeCounts: [DType: Int]
    }

    public static func convert(_ checkpoint: Checkpoint, to path: String, format: OutputFormat, dtype: DTypeChoice,
                               maxShardBytes: Int = 5_000_000_000, replace: Bool = false,
                               progress: ProgressHandler? = nil) throws -> Summary {
        try checkpoint.validate()
        try refuseOverwritingInput(checkpoint.path, output: path)
        let ordered = checkpoint.orderedTensors
        var bytes = 0
        var counts: [DType: Int] = [:]
        var tensorCount = ordered.count
        switch format {
        case .safetensors:
            let writers = TensorWriter.fusingParts(try ordered.map {
                TensorWriter(tensor: $0, outputDType: try dtype.resolve(for: $0, in: .safetensors))
            }, family: checkpoint.family, config: checkpoint.config)
            tensorCount = writers.count
            let writer = HFFolderWriter(checkpoint: checkpoint, writers: writers, maxShardBytes: maxShardBytes)
            try requireSpace(writer.dataBytes, at: path)
            try writer.write(to: path, replace: replace, progress: progress)
            bytes = writer.dataBytes
            for w in writers { counts[w.outputDType, default: 0] += 1 }
        case .gguf:
            try OutputFile.refuseExisting(path, replace: replace)
            let writers = TensorWriter.fusingParts(try ordered.map { t in
                let rows = GGUFExporter.ggufRowOrder(for: t.name, config: checkpoint.config, family: checkpoint.family)
                return TensorWriter(tensor: t, hfRowOrder: rows, outputDType: try dtype.resolve(for: t, in: .gguf))
            }, family: checkpoint.family, config: checkpoint.config)
            tensorCount = writers.count
            let tensors = writers.map { (ggufName: TensorNames.gguf(fromHF: $0.name, family: checkpoint.family) ?? $0.name, writer: $0) }
            var exporter = GGUFExporter(checkpoint: checkpoint, tensors: tensors)
            exporter.extraMetadata = try surgerySummary(of: checkpoint)
            bytes = exporter.tensors.reduce(0) { $0 + $1.writer.outputByteCount }
            try requireSpace(bytes, at: path)
            try exporter.write(to: path, progress: progress)
            for t in exporter.tensors { counts[t.writer.outputDType, default: 0] += 1 }
            tensorCount = exporter.tensors.count
        }
        return Summary(outputPath: path, format: format, tensorCount: tensorCount, bytesWritten: bytes, dtypeCounts: counts)
    }

    /// The GGUF summary of the manifest a surgery output carries (`surgery.json` in its
    /// folder, or `X.surgery.json` beside a GGUF), or nothing for other checkpoints.
    static func surgerySummary(of checkpoint: Checkpoint) throws -> [(key: String, value: GGUFValue)] {
        if let gguf = checkpoint.gguf {
            return gguf.metadata.filter { $0.key.hasPrefix("ckpt_surgeon.") }
        }
        let path = SurgeryManifest.location(of: checkpoint.path)
        guard let data = FilePath.contents(path) else { return [] }
        return try SurgeryManifest.decode(data, path: path).ggufSummary
    }

    /// Outputs never replace their input, nor a folder that contains it.
    public static func refuseOverwritingInput(_ input: String, output: String) throws {
        let a = URL(fileURLWithPath: input).standardizedFileURL.resolvingSymlinksInPath().path
        let b = URL(fileURLWithPath: output).standardizedFileURL.resolvingSymlinksInPath().path
        if a == b || a.hasPrefix(b + "/") {
            throw FormatError(.io, path: output, "refusing to overwrite the input \(input)")
        }
        if b.hasPrefix(a + "/") {
            throw FormatError(.io, path: output, "refusing to write inside the input folder \(input)")
        }
    }

    public static func requireSpace(_ bytes: Int, at path: String) throws {
        guard let free = freeSpace(near: path) else { return }
        let needed = bytes + (1 << 20)
        if free < needed {
            throw FormatError(.io, path: path,
                              "not enough free space: the output needs \(ByteSize.format(needed)), \(ByteSize.format(free)) available")
        }
    }
}
