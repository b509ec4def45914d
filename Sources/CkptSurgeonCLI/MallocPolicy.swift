#if canImport(Glibc)
import Glibc
#endif

/// How glibc's malloc treats large buffers, set once per process.
///
/// mallopt is looked up at run time because Swift's Glibc module does not export malloc.h.
enum MallocPolicy {
    /// The default for every command: buffers of 1 MB and more are mmapped and go back to
    /// the kernel when freed. Left alone, glibc raises its mmap threshold to the size of
    /// the first large buffer freed (up to 32 MB), after which a layer's weights and the
    /// head's vocabulary slices come from the heap and fragment it: `ppl` over 8 windows
    /// peaked at 205 MB that way, against 1 MB-threshold runs that hold only what is live.
    static func returnLargeBuffers() {
        set(threshold: 1 << 20, trim: 1 << 20)
    }

    /// For `eval`: scoring allocates MB-sized buffers per item, and mmapping each one cost
    /// a third of the run in page faults, so large buffers stay on the heap.
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
