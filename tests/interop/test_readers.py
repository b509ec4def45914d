"""Our readers against the reference readers: names, dtypes, shapes, bytes, metadata."""
import numpy as np
import xxhash
from gguf import GGUFReader
from safetensors import safe_open

from conftest import TINY_MODELS, run, run_json

ST_DTYPES = {"float32": "F32", "float16": "F16"}


def test_safetensors_reader_matches_reference(tiny):
    for name in TINY_MODELS + ["llama-gqa-sharded"]:
        report = run_json("inspect", tiny / name, "--hashes")
        assert report["integrity"]["ok"], name
        ours = {t["name"]: t for t in report["tensors"]}
        files = sorted((tiny / name).glob("*.safetensors"))
        seen = 0
        for f in files:
            with safe_open(f, framework="numpy") as st:
                assert st.metadata() == {"format": "pt"}
                for key in st.keys():
                    ref = st.get_tensor(key)
                    t = ours[key]
                    assert t["shape"] == list(ref.shape), key
                    assert t["dtype"] == ST_DTYPES[str(ref.dtype)], key
                    assert t["bytes"] == ref.nbytes, key
                    assert t["xxh3"] == xxhash.xxh3_64_hexdigest(ref.tobytes()), key
                    seen += 1
        assert seen == len(ours), name


def test_gguf_reader_matches_reference(tiny):
    for path in [tiny / "gguf/quant-types.gguf", tiny / "gguf/quant-types.v2.gguf",
                 tiny / "gguf/llama-gqa.f32.gguf", tiny / "gguf/qwen3.f32.gguf"]:
        report = run_json("inspect", "--raw", path, "--hashes")
        ref = GGUFReader(path)
        assert report["version"] == ref.fields["GGUF.version"].contents()
        ours = {t["name"]: t for t in report["tensors"]}
        assert list(ours) == [t.name for t in ref.tensors]
        for t in ref.tensors:
            o = ours[t.name]
            assert o["dtype"] == t.tensor_type.name, t.name
            assert o["shape"] == [int(d) for d in reversed(t.shape.tolist())], t.name
            assert o["offset"] == t.data_offset, t.name
            assert o["bytes"] == t.n_bytes, t.name
            assert o["xxh3"] == xxhash.xxh3_64_hexdigest(np.ascontiguousarray(t.data).tobytes()), t.name
        keys = [k for k in ref.fields if not k.startswith("GGUF.")]
        assert [m["key"] for m in report["metadata"]] == keys


def test_gguf_metadata_round_trips_exactly(tiny, tmp_path):
    """GGUF -> GGUF (raw, keep): every key, type, value and tensor byte as gguf-py reads it."""
    src = tiny / "gguf/quant-types.gguf"
    out = tmp_path / "copy.gguf"
    run("convert", "--raw", src, "-o", out)
    a, b = GGUFReader(src), GGUFReader(out)
    for key, field in a.fields.items():
        if key.startswith("GGUF."):
            continue
        assert b.fields[key].types == field.types, key
        assert b.fields[key].contents() == field.contents(), key
    assert set(b.fields) == set(a.fields)
    for ta, tb in zip(a.tensors, b.tensors):
        assert (ta.name, ta.tensor_type, ta.shape.tolist()) == (tb.name, tb.tensor_type, tb.shape.tolist())
        assert np.ascontiguousarray(ta.data).tobytes() == np.ascontiguousarray(tb.data).tobytes(), ta.name
