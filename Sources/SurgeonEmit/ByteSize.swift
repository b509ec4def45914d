import Foundation

/// Sizes as users write them: `500MB`, `2GB` (powers of 1000, as transformers reads
/// `max_shard_size`), `4GiB` (powers of 1024), or a plain byte count.
public enum ByteSize {
    public static func parse(_ text: String) -> Int? {
        let s = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Int)] = [("KIB", 1 << 10), ("MIB", 1 << 20), ("GIB", 1 << 30), ("TIB", 1 << 40),
                                      ("KB", 1_000), ("MB", 1_000_000), ("GB", 1_000_000_000),
                                      ("TB", 1_000_000_000_000), ("B", 1)]
        for (suffix, scale) in units where s.hasSuffix(suffix) {
            guard let value = Double(s.dropLast(suffix.count)), value > 0 else { return nil }
            return Int(value * Double(scale))
        }
        return Int(s).flatMap { $0 > 0 ? $0 : nil }
    }

    public static func format(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e9 { return String(format: "%.2f GB", b / 1e9) }
        if b >= 1e6 { return String(format: "%.1f MB", b / 1e6) }
        if b >= 1e3 { return String(format: "%.1f kB", b / 1e3) }
        return "\(bytes) B"
    }
}
