"""An independent forward pass of Gemma 2 checkpoints in numpy (float64), written from the
architecture definition in transformers (modeling_gemma2.py: Gemma2RMSNorm, Gemma2MLP,
Gemma2Attention with the eager attention path, Gemma2DecoderLayer, Gemma2Model,
Gemma2ForCausalLM). It shares no code with ckpt-surgeon and is the reference its Gemma 2
logits are checked against.

What sets Gemma 2 apart from Llama:
  * the embeddings are multiplied by sqrt(hidden_size) before the first layer;
  * RMSNorm weights are offsets: x / rms(x) * (1 + w);
  * four norms per layer ("sandwich" norms): the attention and MLP outputs are normalized
    (post_attention_layernorm, post_feedforward_layernorm) before they join the residual;
  * attention scores are scaled by query_pre_attn_scalar ** -0.5 (not head_dim ** -0.5) and
    soft-capped, cap * tanh(score / cap), before the mask is added;
  * sliding-window attention on every other layer (even layers, unless the config carries
    `layer_types`): a query at position q sees keys at kv with q - kv < sliding_window;
  * a GeGLU MLP with the tanh approximation of GELU;
  * the output head is tied to the embeddings and the logits are soft-capped too.

`forward(..., stats={})` also records the largest pre-cap attention score and final logit
(masked entries excluded), so a fixture can show that both soft-caps bite.
"""
import math

import numpy as np

try:  # imported as part of the `oracle` package (tests/ on sys.path)
    from .numpy_forward import load as _load_folder
except ImportError:  # run as a script: python tests/oracle/gemma2_reference.py
    from numpy_forward import load as _load_folder

# Gemma2Config defaults, for keys a config.json may leave out.
DEFAULTS = {
    "head_dim": 256,
    "query_pre_attn_scalar": 256,
    "sliding_window": 4096,
    "attn_logit_softcapping": 50.0,
    "final_logit_softcapping": 30.0,
    "rms_norm_eps": 1e-6,
    "rope_theta": 10000.0,
    "hidden_activation": "gelu_pytorch_tanh",
    "tie_word_embeddings": True,
}


def load(folder):
    """(config dict, {name: float64 array}) of an HF Gemma 2 folder."""
    return _load_folder(folder)


def _get(config, key):
    return config[key] if key in config else DEFAULTS[key]


def rms_norm(x, w, eps):
    """Gemma2RMSNorm: the weight is an offset from 1."""
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * (1.0 + w)


def gelu_tanh(x):
    """gelu_pytorch_tanh."""
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def gelu_ggml_f16(x):
    """ggml's CPU GELU (GGML_GELU_FP16, on by default): the input rounded to f16 indexes a
    table of the tanh GELU rounded to f16; |x| >= 10 passes through or gives 0. To compare
    with llama.cpp, whose Gemma 2 MLP uses it."""
    x16 = x.astype(np.float16).astype(np.float64)
    y = gelu_tanh(x16).astype(np.float16).astype(np.float64)
    return np.where(x <= -10, 0.0, np.where(x >= 10, x, y))


def softcap(x, cap):
    return x if cap is None else np.tanh(x / cap) * cap


def rope_theta(config):
    if "rope_theta" in config:
        return config["rope_theta"]
    params = config.get("rope_parameters") or {}  # newest transformers nest it here
    return params.get("rope_theta", DEFAULTS["rope_theta"])


def rope(x, positions, theta):
    """HF rotate_half convention: dims i and i + d/2 form a pair rotated by pos * theta^(-2i/d).
    x: [heads, T, d]."""
    d = x.shape[-1]
    inv_freq = 1.0 / (theta ** (np.arange(0, d, 2, dtype=np.float64) / d))
    angles = np.outer(positions.astype(np.float64), inv_freq)  # [T, d/2]
    cos = np.cos(np.concatenate([angles, angles], -1))[None]
    sin = np.sin(np.concatenate([angles, angles], -1))[None]
    half = d // 2
    rotated = np.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos + rotated * sin


def is_sliding(config, layer):
    types = config.get("layer_types")
    if types is not None:
        return types[layer] == "sliding_attention"
    return layer % 2 == 0


def attention_mask(t, sliding_window):
    """Boolean [T, T]: True where query q may attend key kv."""
    q = np.arange(t)[:, None]
    kv = np.arange(t)[None, :]
    allowed = kv <= q
    if sliding_window is not None:
        allowed &= (q - kv) < sliding_window
    return allowed


def _record(stats, key, values, where=None):
    if stats is None:
        return
    a = np.abs(values) if where is None else np.abs(values)[np.broadcast_to(where, values.shape)]
    stats[key] = max(stats.get(key, 0.0), float(a.max()))


def forward(config, w, ids, stats=None, gelu=None):
    """Logits [T, vocab] (float64) of Gemma2ForCausalLM on one sequence of token ids."""
    ids = np.asarray(ids, dtype=np.int64)
    t = len(ids)
    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = _get(config, "head_dim")
    eps = _get(config, "rms_norm_eps")
    scaling = _get(config, "query_pre_attn_scalar") ** -0.5
    attn_cap = _get(config, "attn_logit_softcapping")
    final_cap = _get(config, "final_logit_softcapping")
    window = _get(config, "sliding_window")
    act = config.get("hidden_activation") or config.get("hidden_act") or DEFAULTS["hidden_activation"]
    assert act in ("gelu_pytorch_tanh", "gelu_tanh"), f"unsupported activation {act}"
    theta = rope_theta(config)
    positions = np.arange(t)
    group = n_heads // n_kv
    full_mask = attention_mask(t, None)
    sliding_mask = attention_mask(t, window)

    embed = w["model.embed_tokens.weight"]
    h = embed[ids] * math.sqrt(hidden)  # the normalizer; exact in float32 for hidden = 64

    def lin(name, x):
        y = x @ w[name + ".weight"].T
        b = w.get(name + ".bias")
        return y if b is None else y + b

    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        # attention block
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        q = lin(p + "self_attn.q_proj", x).reshape(t, n_heads, head_dim).transpose(1, 0, 2)
        k = lin(p + "self_attn.k_proj", x).reshape(t, n_kv, head_dim).transpose(1, 0, 2)
        v = lin(p + "self_attn.v_proj", x).reshape(t, n_kv, head_dim).transpose(1, 0, 2)
        q, k = rope(q, positions, theta), rope(k, positions, theta)
        kv_of = np.arange(n_heads) // group  # query head j reads KV head j // group
        k, v = k[kv_of], v[kv_of]
        scores = q @ k.transpose(0, 2, 1) * scaling  # [heads, T, T]
        mask = sliding_mask if is_sliding(config, layer) else full_mask
        _record(stats, "max_abs_attn_score", scores, mask[None])
        scores = softcap(scores, attn_cap)
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        a = (scores @ v).transpose(1, 0, 2).reshape(t, n_heads * head_dim)
        a = lin(p + "self_attn.o_proj", a)
        a = rms_norm(a, w[p + "post_attention_layernorm.weight"], eps)
        h = h + a
        # MLP block
        x = rms_norm(h, w[p + "pre_feedforward_layernorm.weight"], eps)
        m = lin(p + "mlp.down_proj", (gelu or gelu_tanh)(lin(p + "mlp.gate_proj", x)) * lin(p + "mlp.up_proj", x))
        m = rms_norm(m, w[p + "post_feedforward_layernorm.weight"], eps)
        h = h + m

    h = rms_norm(h, w["model.norm.weight"], eps)
    tied = _get(config, "tie_word_embeddings") or "lm_head.weight" not in w
    head = embed if tied else w["lm_head.weight"]
    logits = h @ head.T
    _record(stats, "max_abs_final_logit", logits)
    return softcap(logits, final_cap)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "fixtures/tiny/gemma2"
    cfg, weights = load(folder)
    rng = np.random.default_rng(0)
    ids = rng.integers(0, cfg["vocab_size"], size=48).tolist()
    st = {}
    ref = forward(cfg, weights, ids, stats=st)
    print(f"{folder}: logits {ref.shape}, max |logit| {np.abs(ref).max():.4g}")
    print(f"  max |pre-cap attention score| {st['max_abs_attn_score']:.4g} "
          f"(cap {cfg.get('attn_logit_softcapping')})")
    print(f"  max |pre-cap final logit|     {st['max_abs_final_logit']:.4g} "
          f"(cap {cfg.get('final_logit_softcapping')})")
    for what, change in [("sliding_window=1e6", {"sliding_window": 10 ** 6}),
                         ("attn cap None", {"attn_logit_softcapping": None}),
                         ("final cap None", {"final_logit_softcapping": None})]:
        alt = forward({**cfg, **change}, weights, ids)
        print(f"  {what:20s} max |Δ| / max |ref| = {np.abs(alt - ref).max() / np.abs(ref).max():.4g}")
