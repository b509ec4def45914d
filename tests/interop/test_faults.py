"""Faults during writes: SIGKILL at random points, full disks, read-only places, two runs at once.

Every writer is killed at random moments (seeded), and what it leaves is checked with the
tool's own `verify`/`inspect` and with the file system: the output is absent or complete,
the input is unchanged, $TMPDIR holds nothing, and the next run into the same path succeeds
and leaves no temporary files. Disk-full faults come from tiny tmpfs mounts (bytes and
inodes) and from file-size limits; read-only places from read-only tmpfs mounts.
"""
import json
import os
import random
import shutil
import signal
import subprocess
import time
from contextlib import contextmanager

import pytest

from conftest import CLI, run, tree_digest

SEED = 14


def leftovers(folder, name):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))


def check_complete(out, has_manifest):
    """A present output must be whole: verify (hashes against its manifest) or inspect."""
    proc = run("verify" if has_manifest else "inspect", out, check=False, timeout=120)
    assert proc.returncode == 0, (out, proc.stderr)


@pytest.fixture(scope="module")
def jobs(tiny, smollm2, tmp_path_factory):
    """(name, input, argv builder, output has a manifest) for every writer, with inputs
    prepared once: a pruned tiny model for heal/distill/export, SmolLM2 as f16 HF."""
    base = tmp_path_factory.mktemp("fault-inputs")
    deep = tiny / "qwen2-deep"
    pruned = base / "pruned"
    run("prune", deep, "--method", "come", "--target-layers", 4, "--nsamples", 8, "--seqlen", 64, "-o", pruned)
    hf = base / "smollm2-f16"
    run("convert", smollm2, "-o", hf, "--dtype", "f16")
    return [
        ("convert-hf", smollm2, lambda o: ["convert", smollm2, "-o", o, "--dtype", "f16"], False, 9),
        ("convert-gguf", smollm2, lambda o: ["convert", smollm2, "-o", o.with_suffix(".gguf"), "--dtype", "q8_0"], False, 9),
        ("export", hf, lambda o: ["export", hf, "-o", o.with_suffix(".gguf"), "--dtype", "q8_0"], False, 8),
        ("merge", tiny / "llama-gqa", lambda o: ["merge", tiny / "llama-gqa", "--layers", "1,2", "-o", o], True, 7),
        ("prune", deep, lambda o: ["prune", deep, "--method", "come", "--target-layers", 3, "-o", o], True, 7),
        ("heal", pruned, lambda o: ["heal", deep, pruned, "-o", o], True, 6),
        ("distill", pruned, lambda o: ["distill", deep, pruned, "-o", o, "--mode", "mp", "--seqlen", 32,
                                       "--tokens", 512], True, 6),
    ]


def output_of(argv):
    return next(a for prev, a in zip(argv, argv[1:]) if prev == "-o")



def uninterrupted_seconds(argv, env):
    start = time.monotonic()
    subprocess.run([str(CLI), *map(str, argv)], check=True, capture_output=True, env=env)
    return time.monotonic() - start


def test_sigkill_at_random_points_leaves_nothing_partial(jobs, tmp_path):
    """≥ 50 kills in all; each leaves no output or a complete one, an unchanged input and
    an empty $TMPDIR, and the next run into the same path succeeds and cleans up."""
    rng = random.Random(SEED)
    spill = tmp_path / "tmpdir"
    spill.mkdir()
    env = {**os.environ, "TMPDIR": str(spill)}
    tally = {"killed": 0, "mid_write": 0, "finished_first": 0}
    inputs_before = {name: tree_digest(src) for name, src, *_ in jobs}
    for name, src, make, has_manifest, trials in jobs:
        folder = tmp_path / name
        folder.mkdir()
        probe = make(folder / "probe")
        duration = uninterrupted_seconds(probe, env)
        shutil.rmtree(folder)
        folder.mkdir()
        for trial in range(trials):
            argv = make(folder / f"out{trial}")
            out = output_of(argv)
            proc = subprocess.Popen([str(CLI), *map(str, argv)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            time.sleep(rng.uniform(0.0, 1.1 * duration))
            proc.send_signal(signal.SIGKILL)
            code = proc.wait()
            if code == -signal.SIGKILL:
                tally["killed"] += 1
            else:
                tally["finished_first"] += 1
                assert code == 0, (name, code)
            left = leftovers(folder, out.name)
            if left:
                tally["mid_write"] += 1
                assert all(x.split(".")[-1] in (f"tmp-{proc.pid}", f"old-{proc.pid}", "lock") for x in left), left
            present = [p.name for p in folder.iterdir() if not p.name.startswith(".")]
            assert present in ([], [out.name]), (name, present)
            if out.exists():
                check_complete(out, has_manifest)
            assert list(spill.iterdir()) == [], (name, list(spill.iterdir()))
            again = subprocess.run([str(CLI), *map(str, argv), "--force"], capture_output=True, text=True, env=env)
            assert again.returncode == 0, (name, again.stderr)
            check_complete(out, has_manifest)
            assert leftovers(folder, out.name) == [], (name, leftovers(folder, out.name))
            assert [p.name for p in folder.iterdir()] == [out.name]
            shutil.rmtree(out) if out.is_dir() else out.unlink()
            assert not list(folder.iterdir())
    for name, src, *_ in jobs:
        assert tree_digest(src) == inputs_before[name], name
    print(f"SIGKILL trials: {tally}")
    assert tally["killed"] + tally["finished_first"] >= 50
    # The kill times span each run: many land while the output is being written (the
    # others before the first byte, during calibration, or after the commit).
    assert tally["mid_write"] >= (tally["killed"] + tally["finished_first"]) // 4, tally


def test_stale_temporaries_of_dead_runs_go_and_live_ones_stay(tiny, tmp_path):
    out = tmp_path / "out"
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        dead = subprocess.Popen(["true"])
        dead.wait()
        live_tmp = tmp_path / f".out.tmp-{sleeper.pid}"
        dead_tmp = tmp_path / f".out.tmp-{dead.pid}"
        dead_old = tmp_path / f".out.old-{dead.pid}"
        other = tmp_path / f".other.tmp-{dead.pid}"
        for p in (live_tmp, dead_tmp, dead_old):
            p.mkdir()
            (p / "model.safetensors").write_bytes(b"partial")
        other.write_bytes(b"not ours to judge")
        (tmp_path / ".out.lock").write_text(f"{dead.pid}\n")
        run("convert", tiny / "llama-gqa", "-o", out)
        assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["out", live_tmp.name, other.name])
        gguf = tmp_path / "m.gguf"
        (tmp_path / f".m.gguf.tmp-{dead.pid}").write_bytes(b"GGUF partial")
        run("convert", tiny / "llama-gqa", "-o", gguf)
        assert not (tmp_path / f".m.gguf.tmp-{dead.pid}").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_killed_prune_resumes_from_its_last_saved_step(tiny, tmp_path):
    """prune --save-steps killed after its first step, then --resume from the last step
    saved: the same merges and the same tensor bytes as a run never interrupted."""
    deep = tiny / "qwen2-deep"
    common = ["prune", deep, "--method", "come", "--target-layers", 3]
    full = tmp_path / "full"
    run(*common, "--save-steps", tmp_path / "full-steps", "-o", full)
    expected = json.loads((full / "surgery.json").read_text())
    resumed_from = set()
    for trial in range(6):
        steps, out = tmp_path / f"steps{trial}", tmp_path / f"out{trial}"
        proc = subprocess.Popen([str(CLI), *map(str, common), "--save-steps", steps, "-o", out],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        want = 1 + trial % 2  # kill just after step 1 or step 2 appears
        while not (steps / f"step-0{want}").exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        assert not out.exists() or proc.returncode == 0
        saved = sorted(p for p in steps.iterdir() if p.name.startswith("step-"))
        assert saved, "no step was saved before the kill"
        for step in saved:
            run("verify", step)
        last = saved[-1]
        resumed_from.add(last.name)
        run(*common, "--resume", last / "surgery.json", "-o", out, "--force")
        got = json.loads((out / "surgery.json").read_text())
        assert got["steps"] == expected["steps"] and got["output"]["tensors"] == expected["output"]["tensors"]
    assert len(resumed_from) >= 1


@contextmanager
def tmpfs(path, options):
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True, text=True)
    assert mounted.returncode == 0, f"this test needs root to mount a tmpfs: {mounted.stderr!r}"
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def assert_one_line_failure(proc, *keywords):
    """Exit 1 and one error line, the last (progress lines of work done before may precede it)."""
    assert proc.returncode == 1, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert [line for line in lines if line.startswith("Error:")] == lines[-1:], proc.stderr
    assert any(k in lines[-1] for k in keywords), (keywords, lines[-1])


def writers(tiny, base):
    deep = tiny / "qwen2-deep"
    pruned = base / "pruned"
    if not pruned.exists():
        run("prune", deep, "--method", "come", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32, "-o", pruned)
    return [
        lambda o: ["convert", tiny / "llama-mha", "-o", o, "--dtype", "f32"],
        lambda o: ["convert", tiny / "llama-mha", "-o", o.with_suffix(".gguf"), "--dtype", "f32"],
        lambda o: ["convert", "--raw", tiny / "llama-mha/model.safetensors", "-o", o.with_suffix(".safetensors")],
        lambda o: ["merge", tiny / "llama-gqa", "--layers", "1,2", "--nsamples", 4, "--seqlen", 32, "-o", o],
        lambda o: ["prune", deep, "--method", "come", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32, "-o", o],
        lambda o: ["prune", deep, "--method", "shortgpt", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32,
                   "-o", o.with_suffix(".gguf")],
        lambda o: ["export", pruned, "-o", o.with_suffix(".gguf")],
        lambda o: ["heal", deep, pruned, "--nsamples", 4, "--seqlen", 32, "-o", o],
        lambda o: ["distill", deep, pruned, "-o", o, "--mode", "mp", "--seqlen", 32, "--tokens", 128],
        lambda o: ["logits", tiny / "llama-mha", "--ids", " ".join(str(i % 64) for i in range(100)),
                   "-o", o.with_suffix(".safetensors")],
    ]


def test_disk_full_in_every_writer(tiny, tmp_path):
    """Each writer on a tmpfs too small for its output, and on tmpfs mounts that run out of
    inodes before its first file and before its last: one line, exit 1, nothing left on
    the tmpfs, the input unchanged."""
    before = tree_digest(tiny)
    cases = 0
    for i, make in enumerate(writers(tiny, tmp_path)):
        reference = tmp_path / f"ref{i}"
        reference.mkdir()
        argv = make(reference / "out")
        run(*argv)
        out = output_of(argv)
        # inodes: the mount's root, the claim's lock file, then the file, or the folder
        # and its files
        needed = 2 + (1 + len(list(out.rglob("*"))) if out.is_dir() else 1)
        for options in ["size=16k"] + [f"nr_inodes={n}" for n in sorted({2, needed - 1})]:
            with tmpfs(tmp_path / f"full{i}", options) as mnt:
                proc = run(*make(mnt / "out"), check=False, timeout=120)
                assert_one_line_failure(proc, "No space left", "not enough free space")
                assert list(mnt.iterdir()) == [], (make(mnt / "out"), options, list(mnt.iterdir()))
                cases += 1
    assert tree_digest(tiny) == before
    assert cases >= 25


def test_disk_filling_up_during_a_write(smollm2, tmp_path):
    """The free-space check passes, then another program fills the disk while the tensors
    are being written: the write fails with one line and nothing is left."""
    for suffix in ["", ".gguf"]:
        with tmpfs(tmp_path / "filling", "size=300m") as mnt:
            out = mnt / f"out{suffix}"
            proc = subprocess.Popen([str(CLI), "convert", str(smollm2), "-o", str(out), "--dtype", "f16"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            time.sleep(0.3)
            subprocess.run(["dd", "if=/dev/zero", f"of={mnt / 'filler'}", "bs=1M", "count=200"], capture_output=True)
            proc.wait()
            assert proc.returncode == 1, proc.stderr.read()
            err = proc.stderr.read()
            assert len(err.strip().splitlines()) == 1 and "No space left" in err and str(out) in err, err
            assert sorted(p.name for p in mnt.iterdir()) == ["filler"]


def test_full_tmpdir_fails_spilling_runs_cleanly(tiny, tmp_path):
    """Spill files ($TMPDIR) on a full tmpfs: prune and distill stop with one line."""
    deep = tiny / "qwen2-deep"
    with tmpfs(tmp_path / "spill", "size=16k") as spill:
        env = {**os.environ, "TMPDIR": str(spill)}
        pruned = tmp_path / "pruned"
        run("prune", deep, "--method", "come", "--target-layers", 4, "--nsamples", 4, "--seqlen", 32, "-o", pruned)
        for argv in [["prune", deep, "--method", "come", "--target-layers", 3, "--nsamples", 8, "--seqlen", 64],
                     ["distill", deep, pruned, "--mode", "sp", "--seqlen", 32, "--tokens", 256]]:
            out = tmp_path / f"{argv[0]}-out"
            proc = run(*argv, "-o", out, check=False, env=env, timeout=120)
            assert_one_line_failure(proc, "No space left", "not enough", "spill", "$TMPDIR")
            assert not out.exists() and leftovers(tmp_path, out.name) == []
            assert list(spill.iterdir()) == []


def test_write_limit_at_many_points(tiny, tmp_path):
    """A file-size limit (EFBIG) cuts every writer's biggest file at several sizes."""
    cases = 0
    for i, make in enumerate(writers(tiny, tmp_path)):
        for blocks in [1, 40, 150]:
            folder = tmp_path / f"limit{i}-{blocks}"
            folder.mkdir()
            argv = " ".join(f"'{a}'" for a in make(folder / "out"))
            proc = subprocess.run(["bash", "-c", f"ulimit -f {blocks}; exec '{CLI}' {argv}"],
                                  capture_output=True, text=True, timeout=120)
            if proc.returncode == 0:
                continue  # the whole output fits under this limit
            assert_one_line_failure(proc, "File too large", "write failed")
            assert list(folder.iterdir()) == [], list(folder.iterdir())
            cases += 1
    assert cases >= 20


def test_read_only_places(tiny, tmp_path):
    src = tiny / "llama-gqa"
    before = tree_digest(src)
    with tmpfs(tmp_path / "ro", "ro,size=64m") as ro:
        for argv in [["convert", src, "-o", ro / "out"], ["convert", src, "-o", ro / "out.gguf"],
                     ["merge", src, "--layers", "1,2", "--nsamples", 4, "--seqlen", 32, "-o", ro / "m"]]:
            proc = run(*argv, check=False)
            assert_one_line_failure(proc, "Read-only file system")
            assert str(ro) in proc.stderr
    # An input on a read-only mount is read as usual and stays as it was.
    with tmpfs(tmp_path / "input", "size=4m") as mnt:
        shutil.copytree(src, mnt / "model")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        copy_before = tree_digest(mnt / "model")
        run("convert", mnt / "model", "-o", tmp_path / "from-ro.gguf")
        run("prune", mnt / "model", "--method", "shortgpt", "--target-layers", 2, "--nsamples", 4, "--seqlen", 32,
            "-o", tmp_path / "pruned-ro")
        proc = run("convert", mnt / "model", "-o", mnt / "model" / "inside", check=False)
        assert_one_line_failure(proc, "inside the input folder")
        assert tree_digest(mnt / "model") == copy_before
    # An output inside the input folder is refused before any work, for every writer.
    work = tmp_path / "copy"
    shutil.copytree(src, work)
    for argv in [["convert", work, "-o", work / "sub"], ["merge", work, "--layers", "1,2", "-o", work / "sub"],
                 ["prune", work, "--method", "shortgpt", "--target-layers", 2, "-o", work / "sub.gguf"]]:
        proc = run(*argv, check=False)
        assert_one_line_failure(proc, "inside the input folder")
    assert sorted(p.name for p in work.iterdir()) == sorted(p.name for p in src.iterdir())
    assert tree_digest(src) == before


def test_two_runs_into_one_output(tiny, smollm2, tmp_path):
    """Started together, two runs writing the same -o: exactly one succeeds, the other
    fails with one line and takes nothing of the winner's; with --force as well."""
    outcomes = []
    for trial, (suffix, extra) in enumerate([("", []), (".gguf", []), ("", ["--force"]), (".gguf", ["--force"])] * 2):
        out = tmp_path / f"out{trial}{suffix}"
        argv = [str(CLI), "convert", str(smollm2), "-o", str(out), "--dtype", "f16", *extra]
        procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
        results = [(p.wait(), p.stderr.read()) for p in procs]
        codes = sorted(code for code, _ in results)
        assert codes == [0, 1], results
        loser = next(err for code, err in results if code == 1)
        assert len(loser.strip().splitlines()) == 1 and ("another run" in loser or "already exists" in loser), loser
        run("inspect", out)
        assert leftovers(tmp_path, out.name) == []
        outcomes.append(loser.strip())
    # Two runs reading one input at the same time both succeed.
    procs = [subprocess.Popen([str(CLI), "convert", str(tiny / "qwen3"), "-o", str(tmp_path / f"r{i}.gguf")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for i in range(2)]
    assert [p.wait() for p in procs] == [0, 0]
    assert (tmp_path / "r0.gguf").read_bytes() == (tmp_path / "r1.gguf").read_bytes()
