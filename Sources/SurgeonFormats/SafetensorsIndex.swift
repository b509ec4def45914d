/// A sharded safetensors checkpoint: `model.safetensors.index.json` maps each tensor name
/// to the shard file that holds it.
public struct ShardedSafetensors: Sendable {
    public static let indexFileName = "model.safetensors.index.json"

    public let indexPath: String
    public let shards: [SafetensorsFile]
    /// All tensors, in the index's order.
    public let tensors: [TensorInfo]
    /// The index's `metadata` object, kept for writing a new index.
    public let indexMetadata: JSONValue?

    public init(indexPath: String) throws {
        self.indexPath = indexPath
        let indexFile = try MappedFile(path: indexPath)
        let index: JSONValue
        do {
            index = try StrictJSONParser.parse(indexFile.all)
        } catch let error as JSONParseError {
            throw FormatError(.invalidHeader, path: indexPath, "invalid JSON: \(error)")
        }
        guard let weightMap = index["weight_map"]?.object else {
            throw FormatError(.invalidHeader, path: indexPath, "no weight_map object")
        }
        indexMetadata = index["metadata"]
        let folder = directoryOf(indexPath)
        var shardByName: [String: SafetensorsFile] = [:]
        var order: [String] = []
        for (tensor, fileValue) in weightMap {
            guard let fileName = fileValue.string, !fileName.isEmpty, !fileName.contains("/"), fileName != ".." else {
                throw FormatError(.invalidHeader, path: indexPath, "weight_map entry for '\(tensor)' is not a plain file name")
            }
            if shardByName[fileName] != nil { continue }
            let shardPath = folder + "/" + fileName
            guard fileExists(shardPath) else {
                throw FormatError(.inconsistent, path: indexPath, "weight_map names \(fileName), which does not exist")
            }
            shardByName[fileName] = try SafetensorsFile(path: shardPath)
            order.append(fileName)
        }
        var tensors: [TensorInfo] = []
        for (tensor, fileValue) in weightMap {
            let fileName = fileValue.string!
            guard let info = shardByName[fileName]!.tensor(named: tensor) else {
                throw FormatError(.inconsistent, path: indexPath, "weight_map puts '\(tensor)' in \(fileName), which does not hold it")
            }
            tensors.append(info)
        }
        let listed = Set(weightMap.map(\.key))
        for name in order {
            for t in shardByName[name]!.tensors where !listed.contains(t.name) {
                throw FormatError(.inconsistent, path: indexPath, "\(name) holds '\(t.name)', which weight_map does not list")
            }
        }
        self.shards = order.map { shardByName[$0]! }
        self.tensors = tensors
    }
}
