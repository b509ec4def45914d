import Foundation
import SurgeonFormats
import SurgeonModel

/// The token windows calibration runs on: `nsamples` windows of `seqlen` tokens taken at
/// seeded random offsets from a tokenized corpus, or given pre-tokenized.
public struct CalibrationSet: Sendable {
    public let windows: [[Int]]
    /// Where the tokens came from, for the manifest.
    public let corpus: String
    public let corpusXXH3: String
    public let seed: UInt64
    public let corpusTokens: Int

    public var nsamples: Int { windows.count }
    public var seqlen: Int { windows.first?.count ?? 0 }

    public struct TooShort: Error, CustomStringConvertible {
        public let description: String
    }

    /// Windows from `text`: offsets drawn uniformly from [0, tokens − seqlen] with SplitMix64.
    public init(text: String, corpus: String, tokenizer: Tokenizer, nsamples: Int, seqlen: Int, seed: UInt64) throws {
        let ids = tokenizer.encode(text)
        guard ids.count > seqlen else {
            throw TooShort(description: "\(corpus): \(ids.count) tokens, fewer than one window of \(seqlen)")
        }
        var rng = SplitMix64(seed: seed)
        windows = (0..<nsamples).map { _ in
            let start = Int(rng.next() % UInt64(ids.count - seqlen))
            return Array(ids[start..<(start + seqlen)])
        }
        self.corpus = corpus
        corpusXXH3 = Array(text.utf8).withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }
        self.seed = seed
        corpusTokens = ids.count
    }

    /// Pre-tokenized windows (a JSON array of equal-length arrays of ids).
    public init(windows: [[Int]], corpus: String) throws {
        guard let n = windows.first?.count, n > 1, windows.allSatisfy({ $0.count == n }) else {
            throw TooShort(description: "\(corpus): windows must be non-empty, of one length ≥ 2")
        }
        self.windows = windows
        self.corpus = corpus
        corpusXXH3 = windows.description.utf8.withContiguousStorageIfAvailable { XXH3Hasher.hex(XXH3Hasher.hash(UnsafeRawBufferPointer($0))) } ?? ""
        seed = 0
        corpusTokens = windows.count * n
    }
}

/// A small, seedable generator (SplitMix64), so calibration windows are reproducible
/// across runs and platforms.
public struct SplitMix64: RandomNumberGenerator {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension CalibrationSet {
    /// The shipped default corpus (wikitext-2 raw validation split, CC BY-SA 3.0).
    public static var defaultCorpusPath: String? {
        Bundle.module.url(forResource: "wiki.valid.raw", withExtension: nil)?.path
    }
}
