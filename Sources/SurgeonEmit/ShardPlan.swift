/// Splits tensors into safetensors shards no larger than `maxShardBytes` (a tensor larger
/// than the limit gets a shard of its own), named as transformers names them.
public struct ShardPlan: Sendable {
    public let shards: [[Int]]  // indices into the tensor list

    public init(sizes: [Int], maxShardBytes: Int) {
        var shards: [[Int]] = []
        var current: [Int] = []
        var currentBytes = 0
        for (i, size) in sizes.enumerated() {
            if !current.isEmpty && currentBytes + size > maxShardBytes {
                shards.append(current)
                current = []
                currentBytes = 0
            }
            current.append(i)
            currentBytes += size
        }
        if !current.isEmpty || shards.isEmpty { shards.append(current) }
        self.shards = shards
    }

    public func fileName(_ shard: Int) -> String {
        guard shards.count > 1 else { return "model.safetensors" }
        func pad(_ n: Int) -> String { String(repeating: "0", count: max(0, 5 - String(n).count)) + String(n) }
        return "model-\(pad(shard + 1))-of-\(pad(shards.count)).safetensors"
    }
}
