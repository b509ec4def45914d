"""Broken inputs, refused outputs, disk full: one-line errors, non-zero exits, no output."""
import os
import subprocess
import sys

from conftest import CLI, MALFORMED, REPO, TINY_MODELS, run, tree_digest


def cases():
    for line in (MALFORMED / "EXPECTED.tsv").read_text().splitlines():
        name, keyword, _ = line.split("\t")
        yield name, keyword


def assert_clean_failure(proc, keyword, out, path_hint):
    assert proc.returncode not in (0,) and proc.returncode < 128, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert keyword in lines[0].lower(), (keyword, lines[0])
    assert path_hint in lines[0], (path_hint, lines[0])
    assert not out.exists()
    leftovers = [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert not leftovers, leftovers


def test_malformed_inputs(tmp_path):
    count = 0
    for name, keyword in cases():
        path = MALFORMED / name
        hint = name if not keyword.startswith("model-000") else keyword
        commands = [["inspect", path], ["convert", path, "-o", tmp_path / "out"],
                    ["convert", path, "-o", tmp_path / "out.gguf"]]
        if path.is_file() and not name.startswith("gguf-model-"):
            commands.append(["inspect", "--raw", path])
            commands.append(["convert", "--raw", path, "-o", tmp_path / "raw.safetensors"])
        for cmd in commands:
            out = tmp_path / "out"
            proc = run(*cmd, check=False, timeout=30)
            target = next((c for c in cmd if str(c).startswith(str(tmp_path))), out)
            assert_clean_failure(proc, keyword, target, hint)
        count += 1
    assert count >= 30


def test_malformed_fixtures_are_regenerated_identically(tmp_path):
    subprocess.run([sys.executable, REPO / "scripts/fixtures/make_malformed.py", "--out", tmp_path / "m"],
                   check=True, capture_output=True)
    committed = sorted(p.relative_to(MALFORMED) for p in MALFORMED.rglob("*") if p.is_file())
    fresh = sorted(p.relative_to(tmp_path / "m") for p in (tmp_path / "m").rglob("*") if p.is_file())
    assert committed == fresh
    for rel in committed:
        assert (MALFORMED / rel).read_bytes() == (tmp_path / "m" / rel).read_bytes(), rel


def test_inputs_are_never_modified(tiny, tmp_path):
    before = tree_digest(tiny)
    for name in TINY_MODELS:
        run("inspect", tiny / name, "--hashes")
        run("convert", tiny / name, "-o", tmp_path / f"{name}.gguf", "--dtype", "q8_0")
        run("convert", tmp_path / f"{name}.gguf", "-o", tmp_path / f"{name}-hf")
    run("convert", tiny / "llama-gqa-sharded", "-o", tmp_path / "x", "--dtype", "bf16")
    assert tree_digest(tiny) == before


def test_output_rules(tiny, tmp_path):
    src = tiny / "qwen3"
    proc = run("convert", src, "-o", src, "--force", check=False)
    assert proc.returncode != 0 and "refusing to overwrite the input" in proc.stderr
    proc = run("convert", src, "-o", tiny, "--force", check=False)
    assert proc.returncode != 0 and "refusing to overwrite the input" in proc.stderr
    out = tmp_path / "out"
    run("convert", src, "-o", out)
    proc = run("convert", src, "-o", out, check=False)
    assert proc.returncode != 0 and "already exists" in proc.stderr
    run("convert", src, "-o", out, "--dtype", "f16", "--force")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_relative_one_letter_outputs(tiny, tmp_path):
    """Short relative paths (a Foundation path helper used to trap on "o")."""
    for out in ["o", "g.gguf", "./p"]:
        proc = run("convert", tiny / "qwen3", "-o", out, cwd=tmp_path, check=False)
        assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g.gguf", "o", "p"]


def test_write_failure_mid_file_leaves_nothing(tiny, tmp_path):
    """A file-size limit makes a write fail half-way (EFBIG), like a disk filling up."""
    out = tmp_path / "big"
    script = f'ulimit -f 200; exec "{CLI}" convert "{tiny / "llama-mha"}" -o "{out}"'
    proc = subprocess.run(["bash", "-c", script], capture_output=True, text=True)
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "write failed" in lines[0] and "model.safetensors" in lines[0], proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_disk_full_is_refused_before_writing(tiny, tmp_path):
    """On a 1 MB tmpfs the free-space check refuses a 2.7 MB output up front."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True)
    assert mounted.returncode == 0, f"this test needs root to mount a tmpfs: {mounted.stderr!r}"
    try:
        proc = run("convert", tiny / "llama-mha", "-o", mnt / "out.gguf", "--dtype", "f32", check=False)
        assert proc.returncode == 1 and "not enough free space" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert list(mnt.iterdir()) == []
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_fifo_inputs_fail_fast(tiny, tmp_path):
    """A FIFO as the model file, as config.json or as tokenizer.json is refused with one
    line naming it, instead of blocking forever at open (no writer ever comes)."""
    import os
    import shutil

    fifo = tmp_path / "model.gguf"
    os.mkfifo(fifo)
    folder = tmp_path / "folder"
    shutil.copytree(tiny / "llama-mha", folder)
    (folder / "config.json").unlink()
    os.mkfifo(folder / "config.json")
    tok = tmp_path / "tok"
    shutil.copytree(tiny / "llama-mha", tok)
    (tok / "tokenizer.json").unlink()
    os.mkfifo(tok / "tokenizer.json")
    for args, named in [(("inspect", fifo), fifo), (("inspect", folder), folder / "config.json"),
                        (("ppl", fifo), fifo), (("tokenize", tok, "--prompt", "hello"), tok / "tokenizer.json")]:
        proc = run(*args, check=False, timeout=60)
        assert proc.returncode != 0, args
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(named) in lines[0], (args, proc.stderr)
