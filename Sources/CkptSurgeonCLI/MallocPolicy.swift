#if canImport(Glibc)
import Glibc
#endif

/// How glibc's malloc treats large buffers, where a command needs other than its default
/// (which mmaps a buffer above a threshold that rises to the largest one freed, 32 MB at most).
///
/// mallopt is looked up at run time because Swift's Glibc module does not export malloc.h.
enum MallocPolicy {
    /// For `eval`: scoring allocates MB-sized buffers per item, and mmapping each one cost
    /// a third of the run in page faults, so large buffers stay on the heap. `distill` too
    /// (per-window states and gradients, frozen layers' weights).
    static func keepLargeBuffers() {
        set(threshold: 32 << 20, trim: 256 << 20)  // 32 MB is glibc's maximum on 64-bit
    }

    private static func set(threshold: Int32, trim: Int32) {
        #if canImport(Glibc)
        typealias Mallopt = @convention(c) (Int32, Int32) -> Int32
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "mallopt") else { return }
        let mallopt = unsafeBitCast(symbol, to: Mallopt.self)
        _ = mallopt(-3, threshold)  // M_MMAP_THRESHOLD
        _ = mallopt(-1, trim)       // M_TRIM_THRESHOLD
        #endif
    }
}
