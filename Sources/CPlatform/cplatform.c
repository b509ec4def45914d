#define _GNU_SOURCE
#include <unistd.h>
#include "cplatform.h"

ssize_t cplatform_copy_file_range(int in_fd, int64_t *off_in, int out_fd, size_t len) {
    loff_t off = (loff_t)*off_in;
    ssize_t n = copy_file_range(in_fd, &off, out_fd, NULL, len, 0);
    *off_in = (int64_t)off;
    return n;
}
