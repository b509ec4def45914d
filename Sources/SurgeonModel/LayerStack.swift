
/// The layers of the model under surgery, in order: each is an original layer of the
/// checkpoint, or a layer surgery built (f32, parked on disk) with the original layers it
/// stands for: a merge of several, or a refit of one or more (healing).
public struct LayerStack: Sendable {
    public enum Layer: Sendable {
        case original(Int)
        case built(SpilledLayer, originals: ClosedRange<Int>)
    }

    public private(set) var layers: [Layer]

    public init(layerCount: Int) {
        layers = (0..<layerCount).map { .original($0) }
    }

    public var count: Int { layers.count }

    /// The contiguous range of original layers that layer `i` stands for.
    public func originals(_ i: Int) -> ClosedRange<Int> {
        switch layers[i] {
        case .original(let j): j...j
        case .built(_, let r): r
        }
    }

    /// Whether layer `i` stands for more than one original layer.
    public func isMerged(_ i: Int) -> Bool { originals(i).count > 1 }

    public func weights(_ i: Int, checkpoint: Checkpoint) throws -> DecoderLayerWeights {
        switch layers[i] {
        case .original(let j): try DecoderLayerWeights.load(from: checkpoint, layer: j)
        case .built(let w, _): try w.load()
        }
    }

    /// Removes the layers at `indices` (current positions).
    public mutating func remove(_ indices: Set<Int>) {
        layers = layers.enumerated().filter { !indices.contains($0.offset) }.map(\.element)
    }

    /// Replaces the layers in `window` by one merged layer.
    public mutating func replace(_ window: Range<Int>, with weights: DecoderLayerWeights) throws {
        let originals = originals(window.lowerBound).lowerBound...originals(window.upperBound - 1).upperBound
        layers.replaceSubrange(window, with: [.built(try SpilledLayer(weights), originals: originals)])
    }

    /// Replaces layer `i`'s weights (a refit), keeping the original layers it stands for.
    public mutating func rewrite(_ i: Int, with weights: DecoderLayerWeights) throws {
        layers[i] = .built(try SpilledLayer(weights), originals: originals(i))
    }
}
