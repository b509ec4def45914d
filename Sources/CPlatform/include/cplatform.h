#ifndef CKPT_SURGEON_CPLATFORM_H
#define CKPT_SURGEON_CPLATFORM_H
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// copy_file_range(2), which Swift's Glibc module does not export (it needs _GNU_SOURCE).
/// Copies `len` bytes from `in_fd` at *off_in to `out_fd` at its current position.
ssize_t cplatform_copy_file_range(int in_fd, int64_t *off_in, int out_fd, size_t len);

/// rename(2) that fails with EEXIST instead of replacing `to` (renameat2 RENAME_NOREPLACE);
/// where the file system cannot do that, EINVAL.
int cplatform_rename_noreplace(const char *from, const char *to);

/// An unnamed file in `dir` (O_TMPFILE): it never has a name, so no crash can leave it behind.
/// -1 with errno set where the file system does not support it.
int cplatform_open_tmpfile(const char *dir);

/// The CPUs this process may run on (its affinity mask, as `taskset` sets it); 0 if unknown.
int cplatform_available_cpus(void);

/// Sets the calling thread's nice value (Linux: per thread); 0 on success.
int cplatform_set_thread_nice(int nice);

#endif
