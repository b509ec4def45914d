import CXXHash

/// XXH3-64 of tensor bytes, the digest the manifest records and `verify` recomputes.
public struct XXH3Hasher: ~Copyable {
    private let state: OpaquePointer

    public init() {
        state = XXH3_createState()
        XXH3_64bits_reset(state)
    }

    deinit { XXH3_freeState(state) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        XXH3_64bits_update(state, base, bytes.count)
    }

    public func digest() -> UInt64 { XXH3_64bits_digest(state) }

    public static func hash(_ bytes: UnsafeRawBufferPointer) -> UInt64 {
        XXH3_64bits(bytes.baseAddress, bytes.count)
    }

    /// The form stored in manifests: 16 lowercase hex digits.
    public static func hex(_ digest: UInt64) -> String {
        let s = String(digest, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
