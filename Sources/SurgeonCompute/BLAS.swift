import COpenBLAS

/// The two matrix products the forward pass needs, on row-major buffers.
public enum BLAS {
    /// C[m×n] = alpha · A[m×k] · Bᵀ (+ beta · C), where B is stored [n×k] — the layout of a
    /// weight matrix (out × in). `lda`/`ldb`/`ldc` are row strides (default: dense).
    @inline(__always)
    public static func matmulTransposed(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                                        m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                                        alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? k), b, Int32(ldb ?? k), beta, c, Int32(ldc ?? n))
    }

    /// C[m×n] = A[m×k] · B[k×n] (+ beta · C).
    @inline(__always)
    public static func matmul(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                              m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                              alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? k), b, Int32(ldb ?? n), beta, c, Int32(ldc ?? n))
    }

    /// Threads OpenBLAS uses (OPENBLAS_NUM_THREADS, or its default).
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
