#ifndef CKPT_SURGEON_FUZZ_DRIVER_H
#define CKPT_SURGEON_FUZZ_DRIVER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver (compiler-rt, LLVM 11 and later): parses the libFuzzer flags in argv
/// and runs `callback` on every input, as libFuzzer's own main would.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
