import SurgeonFormats

/// One decoder layer's weights as f32, in HF layout (matrices are out × in), by field of
/// the layer table; a field is nil when the layer has no such tensor.
///
/// The executor holds one of these at a time; surgery builds merged layers as values of
/// this type too.
public struct DecoderLayerWeights: Sendable {
    private var tensors = [[Float]?](repeating: nil, count: LayerField.allCases.count)
    /// The checkpoint layer these weights were loaded from (a merge: the first of its
    /// window). Its attention kind, sliding-window or full (Gemma 2), is this layer's.
    public var sourceLayer: Int?

    public init() {}

    public subscript(field: LayerField) -> [Float]? {
        get { tensors[field.rawValue] }
        // In place, without copying the array (training updates weights every step).
        _modify { yield &tensors[field.rawValue] }
        set { tensors[field.rawValue] = newValue }
    }

    /// Zeros in the shape of every field `other` holds: a gradient or an optimiser moment.
    public static func zeros(like other: DecoderLayerWeights) -> DecoderLayerWeights {
        var w = DecoderLayerWeights()
        w.sourceLayer = other.sourceLayer
        for field in other.fields { w[field] = [Float](repeating: 0, count: other[field]!.count) }
        return w
    }

    /// Fields this layer holds, in `LayerField` order.
    public var fields: [LayerField] { LayerField.allCases.filter { self[$0] != nil } }

    /// Decodes layer `layer` of `checkpoint` to f32 and hands its pages back to the kernel.
    public static func load(from checkpoint: Checkpoint, layer: Int) throws -> DecoderLayerWeights {
        let prefix = TensorLayout.layerPrefix(layer)
        var w = DecoderLayerWeights()
        w.sourceLayer = layer
        for row in LayerTensors.present(checkpoint.config, family: checkpoint.family) {
            guard let t = checkpoint.tensor(prefix + row.hfSuffix) else {
                throw FormatError(.inconsistent, path: checkpoint.path, "missing tensor '\(prefix + row.hfSuffix)'")
            }
            defer { t.release() }
            w[row.field] = t.decodeF32()
        }
        return w
    }

    /// Bytes of f32 held.
    public var byteCount: Int {
        4 * tensors.reduce(0) { $0 + ($1?.count ?? 0) }
    }
}
