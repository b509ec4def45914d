#define _GNU_SOURCE
#include <unistd.h>
#include <fcntl.h>
#include <stdio.h>
#include <sched.h>
#include <sys/resource.h>
#include "cplatform.h"

ssize_t cplatform_copy_file_range(int in_fd, int64_t *off_in, int out_fd, size_t len) {
    loff_t off = (loff_t)*off_in;
    ssize_t n = copy_file_range(in_fd, &off, out_fd, NULL, len, 0);
    *off_in = (int64_t)off;
    return n;
}

int cplatform_rename_noreplace(const char *from, const char *to) {
    return renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE);
}

int cplatform_open_tmpfile(const char *dir) {
    return open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
}

int cplatform_set_thread_nice(int nice) {
    return setpriority(PRIO_PROCESS, (id_t)gettid(), nice);
}

int cplatform_available_cpus(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    return CPU_COUNT(&set);
}
