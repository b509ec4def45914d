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
        try self.init(texts: [(corpus, text)], tokenizer: tokenizer, nsamples: nsamples, seqlen: seqlen, seed: seed)
    }

    /// Windows from several corpora, split as evenly as possible (the first ones take the
    /// remainder): corpus k draws its offsets with SplitMix64 seeded `seed + k`, so a
    /// single corpus gives the same windows as `init(text:…)`.
    public init(texts: [(name: String, text: String)], tokenizer: Tokenizer, nsamples: Int, seqlen: Int,
                seed: UInt64) throws {
        var windows: [[Int]] = [], tokens = 0
        for (k, source) in texts.enumerated() {
            let ids = tokenizer.encode(source.text)
            guard ids.count > seqlen else {
                throw TooShort(description: "\(source.name): \(ids.count) tokens, fewer than one window of \(seqlen)")
            }
            let share = nsamples / texts.count + (k < nsamples % texts.count ? 1 : 0)
            var rng = SplitMix64(seed: seed &+ UInt64(k))
            windows += (0..<share).map { _ in
                let start = Int(rng.next() % UInt64(ids.count - seqlen))
                return Array(ids[start..<(start + seqlen)])
            }
            tokens += ids.count
        }
        self.windows = windows
        corpus = texts.map(\.name).joined(separator: " + ")
        let joined = texts.map(\.text).joined(separator: "\u{0}")
        corpusXXH3 = Array(joined.utf8).withUnsafeBytes { XXH3Hasher.hex(XXH3Hasher.hash($0)) }
        self.seed = seed
        corpusTokens = tokens
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

/// A calibration text that ships inside the tool (Sources/SurgeonSurgery/Resources, with
/// its licence beside it).
public enum ShippedCorpus: String, CaseIterable, Sendable {
    /// The wikitext-2 raw validation split (CC BY-SA 3.0): the default for calibration.
    case wikiValid = "wiki.valid.raw"
    /// 500 documents of the C4 English validation split (ODC-BY), taken from the second
    /// half of the 2,000-document sample so they are far from the windows evaluated.
    case c4 = "c4-calibration.txt"

    public var name: String {
        switch self {
        case .wikiValid: "wikitext-2-raw validation (shipped)"
        case .c4: "C4 validation sample (shipped)"
        }
    }

    public var path: String? { Bundle.module.url(forResource: rawValue, withExtension: nil)?.path }
}

extension CalibrationSet {
    /// The shipped default corpus (wikitext-2 raw validation split, CC BY-SA 3.0).
    public static var defaultCorpusPath: String? { ShippedCorpus.wikiValid.path }
}

extension CalibrationSet {
    /// What the manifest records of this set.
    public var record: CalibrationRecord {
        CalibrationRecord(corpus: corpus, corpusXxh3: corpusXXH3, nsamples: nsamples, seqlen: seqlen,
                          seed: seed, corpusTokens: corpusTokens)
    }
}
