import COpenBLAS

/// The matrix products of the forward and backward passes, on row-major buffers.
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

    /// C[m×n] = alpha · Aᵀ · B (+ beta · C), where A is stored [k×m] and B [k×n]: the
    /// weight gradient dyᵀ·x of a projection, summed over rows.
    @inline(__always)
    public static func matmulTransposedA(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ c: UnsafeMutablePointer<Float>,
                                         m: Int, n: Int, k: Int, lda: Int? = nil, ldb: Int? = nil, ldc: Int? = nil,
                                         alpha: Float = 1, beta: Float = 0) {
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), alpha,
                    a, Int32(lda ?? m), b, Int32(ldb ?? n), beta, c, Int32(ldc ?? n))
    }

    /// C[n×n] += Aᵀ·A for A[m×n] (f64, row-major); only the upper triangle of C is written.
    public static func addGramUpper(_ a: UnsafePointer<Double>, _ c: UnsafeMutablePointer<Double>, m: Int, n: Int) {
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(n), Int32(m), 1, a, Int32(n), 1, c, Int32(n))
    }

    /// C[p×n] += Bᵀ·A for B[m×p] and A[m×n] (f64, row-major).
    public static func addTransposedProduct(_ b: UnsafePointer<Double>, _ a: UnsafePointer<Double>,
                                            _ c: UnsafeMutablePointer<Double>, m: Int, n: Int, p: Int) {
        cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(p), Int32(n), Int32(m), 1,
                    b, Int32(p), a, Int32(n), 1, c, Int32(n))
    }

    /// Cholesky factorisation of the symmetric positive definite a[n×n] (LAPACK dpotrf on
    /// the triangle that row-major storage calls upper); false if a is not positive definite.
    public static func choleskyUpper(_ a: UnsafeMutablePointer<Double>, n: Int) -> Bool {
        var uplo = CChar(UInt8(ascii: "L")), order = Int32(n), info: Int32 = 0
        dpotrf_(&uplo, &order, a, &order, &info)
        return info == 0
    }

    /// Solves a·X = B with a factored by `choleskyUpper`, for the `rhs` right-hand sides
    /// stored as the rows of b[rhs×n] (overwritten with the solutions, one per row).
    public static func choleskySolveUpper(_ a: UnsafePointer<Double>, _ b: UnsafeMutablePointer<Double>, n: Int, rhs: Int) {
        var uplo = CChar(UInt8(ascii: "L")), order = Int32(n), count = Int32(rhs), info: Int32 = 0
        dpotrs_(&uplo, &order, &count, a, &order, b, &order, &info)
    }

    /// Runs `body` with OpenBLAS on one thread, for work that calls it from several
    /// threads at once; the thread count is restored afterwards.
    public static func singleThreaded(_ body: () -> Void) {
        let count = openblas_get_num_threads()
        openblas_set_num_threads(1)
        defer { openblas_set_num_threads(count) }
        body()
    }

    /// Threads OpenBLAS uses (OPENBLAS_NUM_THREADS, or its default).
    public static var threads: Int { Int(openblas_get_num_threads()) }
}
