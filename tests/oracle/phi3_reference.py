"""An independent forward pass of Phi-3 checkpoints in numpy (float64), written from the
architecture definition in transformers (modeling_phi3.py: Phi3RMSNorm, Phi3MLP, Phi3Attention
with the eager attention path, Phi3DecoderLayer, Phi3Model, Phi3ForCausalLM; the longrope
frequencies of modeling_rope_utils.py: _compute_longrope_parameters and the
longrope_frequency_update of dynamic_rope_update). It shares no code with ckpt-surgeon and is
the reference its Phi-3 logits are checked against.

What sets Phi-3 apart from Llama:
  * fused projections: qkv_proj rows are q (heads * head_dim), then k, then v (kv_heads *
    head_dim each); gate_up_proj rows are gate (intermediate), then up (intermediate);
  * head_dim is hidden_size / num_attention_heads (Phi3Config has no head_dim key);
  * longrope rotary scaling: inv_freq_i = 1 / (ext_i * theta^(2i/d)), where ext is long_factor
    if the forward's sequence length exceeds original_max_position_embeddings, else
    short_factor, and cos / sin are multiplied by attention_factor.

How transformers picks the factors (longrope_frequency_update, run before every rotary forward):
    seq_len = torch.max(position_ids) + 1
    if seq_len > original_max_position_embeddings:  long_factor  (strict >)
    else:                                           short_factor
original_max_position_embeddings is the top-level config key (Phi3Config default 4096). In one
forward from position 0, max(position_ids) + 1 is the number of positions.
The default attention_factor, from _compute_longrope_parameters:
    factor = max_position_embeddings / original_max_position_embeddings
    attention_factor = 1 if factor <= 1 else sqrt(1 + ln(factor) / ln(original_max_position_embeddings))
unless rope_scaling carries "attention_factor". It is the same for short and long factors.

With a KV cache, transformers' Phi3ForCausalLM.prepare_inputs_for_generation drops the cache the
first time the sequence grows past original_max_position_embeddings and re-runs the whole
prefix, so every step's logits are those of a full forward over the tokens so far:
`incremental_logits` gives that (row j = last row of forward(ids[:j + 1])).
"""
import math

import numpy as np

try:  # imported as part of the `oracle` package (tests/ on sys.path)
    from .numpy_forward import load as _load_folder
except ImportError:  # run as a script: python tests/oracle/phi3_reference.py
    from numpy_forward import load as _load_folder

# Phi3Config defaults, for keys a config.json may leave out.
DEFAULTS = {
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "hidden_act": "silu",
    "tie_word_embeddings": False,
    "sliding_window": None,
    "partial_rotary_factor": 1.0,
    "max_position_embeddings": 4096,
    "original_max_position_embeddings": 4096,
}


def load(folder):
    """(config dict, {name: float64 array}) of an HF Phi-3 folder."""
    return _load_folder(folder)


def _get(config, key):
    v = config.get(key)
    return DEFAULTS[key] if v is None and key in DEFAULTS else v


def head_dim(config):
    return config["hidden_size"] // config["num_attention_heads"]


def rms_norm(x, w, eps):
    """Phi3RMSNorm: x / sqrt(mean(x^2) + eps) * w."""
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def silu(x):
    return x / (1.0 + np.exp(-x))


def rope_kind(config):
    scaling = config.get("rope_scaling")
    if not scaling:
        return "default"
    kind = scaling.get("rope_type", scaling.get("type"))
    return "longrope" if kind in ("su", "yarn") else kind  # Phi3Config's backward-compat rename


def original_max_positions(config):
    return _get(config, "original_max_position_embeddings")


def attention_factor(config):
    """The cos / sin multiplier of longrope (1 for plain RoPE). Phi3Config always has
    original_max_position_embeddings (default 4096), so transformers 4.4x/4.5x always takes
    factor = max_position_embeddings / original_max_position_embeddings here (a "factor" in
    rope_scaling is not read for Phi-3; its validation allows only type / short_factor /
    long_factor there)."""
    if rope_kind(config) != "longrope":
        return 1.0
    scaling = config["rope_scaling"]
    if scaling.get("attention_factor") is not None:
        return float(scaling["attention_factor"])
    original = original_max_positions(config)
    factor = _get(config, "max_position_embeddings") / original
    return 1.0 if factor <= 1.0 else math.sqrt(1.0 + math.log(factor) / math.log(original))


def uses_long_factor(config, seq_len):
    """transformers: `if seq_len > original_max_position_embeddings` (seq_len = max position + 1)."""
    return rope_kind(config) == "longrope" and seq_len > original_max_positions(config)


def inv_freq(config, seq_len):
    """Inverse frequencies [rotary_dim / 2] for a forward whose largest position is seq_len - 1."""
    d = int(head_dim(config) * _get(config, "partial_rotary_factor"))
    theta = _get(config, "rope_theta")
    base = theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    kind = rope_kind(config)
    if kind == "default":
        return 1.0 / base
    assert kind == "longrope", f"unsupported rope type {kind}"
    scaling = config["rope_scaling"]
    ext = scaling["long_factor"] if uses_long_factor(config, seq_len) else scaling["short_factor"]
    ext = np.asarray(ext, dtype=np.float64)
    assert ext.shape == base.shape, f"{len(ext)} factors for {d // 2} frequency pairs"
    return 1.0 / (ext * base)


def rope(x, positions, freqs, scale):
    """HF rotate_half convention on the first 2 * len(freqs) dims (the rest pass through);
    cos and sin carry the attention factor. x: [heads, T, d]."""
    rot = 2 * len(freqs)
    angles = np.outer(positions.astype(np.float64), freqs)  # [T, rot/2]
    cos = np.cos(np.concatenate([angles, angles], -1))[None] * scale
    sin = np.sin(np.concatenate([angles, angles], -1))[None] * scale
    xr, xp = x[..., :rot], x[..., rot:]
    half = rot // 2
    rotated = np.concatenate([-xr[..., half:], xr[..., :half]], axis=-1)
    return np.concatenate([xr * cos + rotated * sin, xp], axis=-1)


def attention_mask(t, sliding_window):
    """Boolean [T, T]: True where query q may attend key kv (causal; with a window, q - kv < window)."""
    q = np.arange(t)[:, None]
    kv = np.arange(t)[None, :]
    allowed = kv <= q
    if sliding_window is not None:
        allowed &= (q - kv) < sliding_window
    return allowed


def forward(config, w, ids, positions_total=None):
    """Logits [T, vocab] (float64) of Phi3ForCausalLM on one sequence of token ids at positions
    0..T-1. positions_total is the sequence length the rotary factors are chosen by
    (transformers' max(position_ids) + 1); it defaults to T. Give a larger value to see the
    long factors on a short input."""
    ids = np.asarray(ids, dtype=np.int64)
    t = len(ids)
    seq_len = t if positions_total is None else positions_total
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads") or n_heads
    d = head_dim(config)
    eps = _get(config, "rms_norm_eps")
    act = _get(config, "hidden_act")
    assert act == "silu", f"unsupported activation {act}"
    q_size, kv_size = n_heads * d, n_kv * d
    inter = config["intermediate_size"]
    freqs = inv_freq(config, seq_len)
    scale = attention_factor(config)
    positions = np.arange(t)
    mask = attention_mask(t, _get(config, "sliding_window"))
    kv_of = np.arange(n_heads) // (n_heads // n_kv)  # query head j reads KV head j // group

    h = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        # attention block
        x = rms_norm(h, w[p + "input_layernorm.weight"], eps)
        qkv = x @ w[p + "self_attn.qkv_proj.weight"].T
        assert qkv.shape[-1] == q_size + 2 * kv_size
        q = qkv[:, :q_size].reshape(t, n_heads, d).transpose(1, 0, 2)
        k = qkv[:, q_size:q_size + kv_size].reshape(t, n_kv, d).transpose(1, 0, 2)
        v = qkv[:, q_size + kv_size:].reshape(t, n_kv, d).transpose(1, 0, 2)
        q, k = rope(q, positions, freqs, scale), rope(k, positions, freqs, scale)
        k, v = k[kv_of], v[kv_of]
        scores = q @ k.transpose(0, 2, 1) * d ** -0.5  # [heads, T, T]
        scores = np.where(mask[None], scores, -np.inf)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        a = (scores @ v).transpose(1, 0, 2).reshape(t, q_size)
        h = h + a @ w[p + "self_attn.o_proj.weight"].T
        # MLP block
        x = rms_norm(h, w[p + "post_attention_layernorm.weight"], eps)
        gate_up = x @ w[p + "mlp.gate_up_proj.weight"].T
        assert gate_up.shape[-1] == 2 * inter
        gate, up = gate_up[:, :inter], gate_up[:, inter:]
        h = h + (silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T

    h = rms_norm(h, w["model.norm.weight"], eps)
    tied = _get(config, "tie_word_embeddings") or "lm_head.weight" not in w
    head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
    return h @ head.T


def incremental_logits(config, w, ids):
    """Logits [T, vocab] of feeding the ids one at a time, as transformers' generate does with
    Phi-3: row j is the last row of a full forward over ids[:j + 1] (short factors while
    j + 1 <= original_max_position_embeddings, long after; the cache is re-built at the switch)."""
    return np.stack([forward(config, w, ids[:j + 1])[-1] for j in range(len(ids))])


if __name__ == "__main__":
    import sys
    from pathlib import Path

    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[2] / "fixtures/tiny/phi3"
    cfg, weights = load(folder)
    rng = np.random.default_rng(0)
    original = original_max_positions(cfg)
    print(f"{folder}: attention_factor {attention_factor(cfg):.6g}, original_max_position_embeddings {original}")
    for n in (12, 40):
        ids = rng.integers(0, cfg["vocab_size"], size=n).tolist()
        ref = forward(cfg, weights, ids)
        mx = np.abs(ref).max()
        other = forward(cfg, weights, ids, positions_total=original if n > original else original + 1)
        flat = forward({**cfg, "rope_scaling": {**cfg["rope_scaling"], "attention_factor": 1.0}}, weights, ids)
        inc = incremental_logits(cfg, weights, ids)
        print(f"  {n} ids ({'long' if uses_long_factor(cfg, n) else 'short'} factors): max |logit| {mx:.4g}")
        print(f"    other factors       max |Δ| / max |ref| = {np.abs(other - ref).max() / mx:.4g}")
        print(f"    attention_factor 1  max |Δ| / max |ref| = {np.abs(flat - ref).max() / mx:.4g}")
        print(f"    incremental         max |Δ| / max |ref| = {np.abs(inc - ref).max() / mx:.4g}")
