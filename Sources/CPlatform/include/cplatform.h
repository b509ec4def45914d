#ifndef CKPT_SURGEON_CPLATFORM_H
#define CKPT_SURGEON_CPLATFORM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// copy_file_range(2), which Swift's Glibc module does not export (it needs _GNU_SOURCE).
/// Copies `len` bytes from `in_fd` at *off_in to `out_fd` at its current position.
ssize_t cplatform_copy_file_range(int in_fd, int64_t *off_in, int out_fd, size_t len);

#endif
