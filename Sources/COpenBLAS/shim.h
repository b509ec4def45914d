#include <cblas.h>

/* LAPACK's Cholesky factorisation and solve, which libopenblas exports (Fortran ABI);
   Debian's OpenBLAS headers do not declare them. */
void dpotrf_(const char *uplo, const int *n, double *a, const int *lda, int *info);
void dpotrs_(const char *uplo, const int *n, const int *nrhs, const double *a, const int *lda,
             double *b, const int *ldb, int *info);
