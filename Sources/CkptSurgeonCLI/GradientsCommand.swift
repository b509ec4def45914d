import ArgumentParser
import Foundation
import SurgeonCompute
import SurgeonFormats
import SurgeonModel

struct GradientsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gradients",
        abstract: "Write a decoder layer's distillation loss and gradients, to check the backward pass against another implementation.",
        discussion: """
        Reads "input" and "target" (F32 [T, hidden], or [S, T, hidden] for S sequences) \
        from --states, runs layers --layer ..< --layer + --through on "input" (the first \
        one records its activations, the others are frozen), takes the loss (--loss) \
        between the result and "target", and runs the backward pass. Writes a safetensors \
        file with "loss" (F32 [1]), "d.input" (dL/d input, shaped like it) and \
        "d.<tensor>" for every tensor of the first layer (its HF name after \
        "model.layers.N.", flattened).

        Examples:
          ckpt-surgeon gradients tiny-llama --layer 1 --states pair.safetensors -o grads.safetensors
          ckpt-surgeon gradients tiny-qwen3 --layer 0 --through 3 --loss mse --states pair.safetensors -o g.safetensors
        """)

    @Argument(help: "HF folder, .safetensors file or .gguf file.")
    var model: String

    @Option(help: "The layer whose gradients are written.")
    var layer: Int

    @Option(help: "Layers run from --layer on (the ones after the first frozen).")
    var through = 1

    @Option(help: "safetensors file with \"input\" and \"target\".")
    var states: String

    @Option(help: "Loss: kl (symmetric KL over the hidden softmax) or mse.")
    var loss: FeatureLoss = .kl

    @Option(name: .shortAndLong, help: "Output .safetensors file.")
    var output: String

    @OptionGroup var compute: ComputeOptions

    func run() throws { try compute.run(execute) }

    private func execute() throws {
        let checkpoint = try Checkpoint.open(model)
        try checkpoint.validate()
        let shape = LayerShape(checkpoint.config)
        guard layer >= 0, through >= 1, layer + through <= checkpoint.config.numHiddenLayers else {
            throw InputError("layers \(layer)..<\(layer + through) are not within the model's \(checkpoint.config.numHiddenLayers)")
        }
        let file = try SafetensorsFile(path: states)
        func tensor(_ name: String) throws -> TensorInfo {
            guard let t = file.tensors.first(where: { $0.name == name }), t.dtype == .f32,
                  t.shape.count == 2 || t.shape.count == 3, t.shape.last == shape.hidden else {
                throw InputError("\(states): '\(name)' must be F32 [T, \(shape.hidden)] or [S, T, \(shape.hidden)]")
            }
            return t
        }
        let input = try tensor("input"), target = try tensor("target")
        guard input.shape == target.shape else { throw InputError("\(states): 'input' and 'target' differ in shape") }
        let sequences = input.shape.count == 3 ? input.shape[0] : 1, length = input.shape[input.shape.count - 2]
        let lengths = [Int](repeating: length, count: sequences), rows = sequences * length

        let rope = RotaryEmbedding(checkpoint: checkpoint)
        let tables = rope.tables(count: length)
        let weights = try (layer..<(layer + through)).map { try DecoderLayerWeights.load(from: checkpoint, layer: $0) }
        let tapes = weights.map { _ in LayerTape() }
        let workspace = LayerWorkspace()
        var x = decodeF32(input)
        x.withUnsafeMutableBufferPointer { x in
            for (i, w) in weights.enumerated() {
                DecoderLayer.forward(w, shape: shape, rope: rope, ropeTables: tables, x: x.baseAddress!, lengths: lengths,
                                     layer: layer + i, workspace: workspace, tape: tapes[i])
            }
        }
        var d = [Float](repeating: 0, count: x.count)
        let value = decodeF32(target).withUnsafeBufferPointer { t in
            loss.evaluate(student: x, teacher: t.baseAddress!, rows: rows, width: shape.hidden, gradient: &d)
        }
        var gradients: DecoderLayerWeights? = .zeros(like: weights[0])
        let backward = BackwardWorkspace()
        d.withUnsafeMutableBufferPointer { d in
            for i in weights.indices.dropFirst().reversed() {
                var frozen: DecoderLayerWeights? = nil
                DecoderLayer.backward(weights[i], shape: shape, rope: rope, ropeTables: tables, tape: tapes[i],
                                      dx: d.baseAddress!, gradients: &frozen, layer: layer + i, workspace: backward)
            }
            DecoderLayer.backward(weights[0], shape: shape, rope: rope, ropeTables: tables, tape: tapes[0],
                                  dx: d.baseAddress!, gradients: &gradients, layer: layer, workspace: backward)
        }
        try write(loss: value, input: d, inputShape: input.shape, gradients: gradients!, checkpoint: checkpoint)
    }

    private func write(loss: Double, input: [Float], inputShape: [Int], gradients: DecoderLayerWeights,
                       checkpoint: Checkpoint) throws {
        let rows = LayerTensors.present(checkpoint.config, family: checkpoint.family)
        var entries: [SafetensorsLayout.Entry] = [.init(name: "loss", dtype: .f32, shape: [1]),
                                                   .init(name: "d.input", dtype: .f32, shape: inputShape)]
        var payloads: [[Float]] = [[Float(loss)], input]
        for row in rows {
            let g = gradients[row.field]!
            entries.append(.init(name: "d." + row.hfSuffix, dtype: .f32, shape: [g.count]))
            payloads.append(g)
        }
        let out = try OutputFile(path: output)
        try out.write(SafetensorsLayout(entries: entries, metadata: []).headerBytes())
        for p in payloads { try p.withUnsafeBytes { try out.write($0) } }
        try out.commit()
    }
}

extension FeatureLoss: ExpressibleByArgument {}
