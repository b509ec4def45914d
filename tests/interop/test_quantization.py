"""Dequantization and encoding are bit-identical to gguf-py (`gguf.quants`)."""
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFReader, quants
from safetensors.numpy import load_file

from conftest import hf_name, llama_unpermute, run


def bits(a):
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)


def reference_f32(t):
    shape = tuple(int(d) for d in reversed(t.shape.tolist()))
    return quants.dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)


def test_every_quant_type_dequantizes_bit_identically(tiny, tmp_path):
    out = tmp_path / "decoded.safetensors"
    run("convert", "--raw", tiny / "gguf/quant-types.gguf", "-o", out, "--dtype", "f32")
    ours = load_file(out)
    ref = GGUFReader(tiny / "gguf/quant-types.gguf")
    types = set()
    for t in ref.tensors:
        assert np.array_equal(bits(ours[t.name]), bits(reference_f32(t))), t.name
        types.add(t.tensor_type.name)
    assert {"F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q4_K", "Q5_K", "Q6_K"} <= types


def test_encoders_match_reference(tiny, tmp_path):
    """f32 -> F16 (numpy rounding), BF16 and Q8_0 (gguf-py's ggml-exact quantizers)."""
    src = tmp_path / "f32.safetensors"
    run("convert", "--raw", tiny / "gguf/quant-types.gguf", "-o", src, "--dtype", "f32")
    x = load_file(src)["t.f32"]
    for dtype, qtype in [("f16", Q.F16), ("bf16", Q.BF16), ("q8_0", Q.Q8_0)]:
        out = tmp_path / f"{dtype}.gguf"
        run("convert", "--raw", src, "-o", out, "--dtype", dtype)
        t = next(t for t in GGUFReader(out).tensors if t.name == "t.f32")
        assert t.tensor_type == qtype
        expected = quants.quantize(x, qtype)
        assert np.ascontiguousarray(t.data).tobytes() == np.ascontiguousarray(expected).tobytes(), dtype


def test_smollm2_every_tensor_dequantizes_bit_identically(smollm2, smollm2_hf, tmp_path):
    """Raw (stored layout) and model (HF layout, q/k un-permuted) conversions of the real model."""
    ref = GGUFReader(smollm2)
    raw_out = tmp_path / "raw.safetensors"
    run("convert", "--raw", smollm2, "-o", raw_out, "--dtype", "f32")
    raw = load_file(raw_out)
    hf = load_file(smollm2_hf / "model.safetensors")
    heads = int(ref.fields["llama.attention.head_count"].contents())
    kv_heads = int(ref.fields["llama.attention.head_count_kv"].contents())
    assert len(ref.tensors) == 272
    for t in ref.tensors:
        expected = reference_f32(t)
        assert np.array_equal(bits(raw[t.name]), bits(expected)), t.name
        if ".attn_q." in t.name:
            expected = llama_unpermute(expected, heads)
        elif ".attn_k." in t.name:
            expected = llama_unpermute(expected, kv_heads)
        assert np.array_equal(bits(hf[hf_name(t.name)]), bits(expected)), t.name
