// Prints llama.cpp's logits for a fixed list of token ids, so the interop tests can
// compare them with ckpt-surgeon's forward. It is a peer, not our code under test:
// it only calls libllama's public API.
//
//   llama-dump-logits MODEL.gguf ID ID ID ...
//
// Output: one line per position, the logits separated by spaces (full vocabulary).
#include "llama.h"
#include <clocale>
#include <cstdio>
#include <cstdlib>
#include <vector>

int main(int argc, char ** argv) {
    std::setlocale(LC_NUMERIC, "C");
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf ID [ID ...]\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> tokens;
    for (int i = 2; i < argc; ++i) tokens.push_back((llama_token) std::atoi(argv[i]));
    const int32_t n = (int32_t) tokens.size();

    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (model == nullptr) { fprintf(stderr, "error: cannot load %s\n", argv[1]); return 1; }
    const int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = n;
    cparams.n_batch = n;
    cparams.n_ubatch = n;
    // By default llama.cpp keeps K and V in F16 and its CPU flash attention rounds Q to
    // F16 (about 6e-4 of the largest logit on the tiny models); F32 everywhere leaves only
    // summation order between its logits and ours.
    cparams.type_k = GGML_TYPE_F32;
    cparams.type_v = GGML_TYPE_F32;
    cparams.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (ctx == nullptr) { fprintf(stderr, "error: cannot create a context\n"); return 1; }

    llama_batch_ext * batch = llama_batch_ext_init(ctx);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t idx = llama_batch_ext_add_token(batch, 0, tokens[i]);
        const llama_pos pos = i;
        llama_batch_ext_set_pos(batch, idx, &pos);
        llama_batch_ext_set_output_logits(batch, idx, true);
    }
    if (llama_process(ctx, LLAMA_PROCESS_TYPE_DECODE, batch) != 0) {
        fprintf(stderr, "error: decode failed\n");
        return 1;
    }
    for (int32_t i = 0; i < n; ++i) {
        const float * logits = llama_get_logits_ith(ctx, i);
        for (int32_t v = 0; v < n_vocab; ++v) printf(v ? " %.7g" : "%.7g", logits[v]);
        printf("\n");
    }
    llama_batch_ext_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
