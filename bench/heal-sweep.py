"""Chooses heal's defaults (calibration corpus, ridge, calibration size) by measurement,
on held-out validation text only: never the wikitext-2 test split, never the C4 windows the
benchmarks evaluate.

Protocol. The student is SmolLM2 pruned 30 → 21 layers with CoMe (default options).
Each candidate heals it calibrating on
  * wiki: the first half of wikitext-2 validation (by lines),
  * c4:   the shipped C4 slice (documents 1000–1499 of the 2,000-document sample),
  * mix:  both, windows split evenly,
and is scored by perplexity (ctx 512) on
  * the second half of wikitext-2 validation, and
  * C4 documents 1500–1999 of the same sample,
neither of which any candidate calibrates on. Stage 1 compares the corpora at 32 × 512
tokens and ridge 0.1; stage 2 the ridge on the best corpus; stage 3 the calibration size.
Writes sweep.json and sweep.md to --out and prints the table.
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CKPT_SHARED", REPO.parent / "shared"))
CLI = os.environ.get("CKPT_SURGEON", str(REPO / ".build/release/ckpt-surgeon"))
SHIPPED_C4 = REPO / "Sources/SurgeonSurgery/Resources/c4-calibration.txt"
WIKI_VALID = REPO / "Sources/SurgeonSurgery/Resources/wiki.valid.raw"


def log(message):
    print(f"heal-sweep: {message}", file=sys.stderr, flush=True)


def timed(args):
    time_file = Path(os.environ.get("TMPDIR", "/tmp")) / f"heal-sweep-time-{os.getpid()}.txt"
    proc = subprocess.run(["/usr/bin/time", "-v", "-o", str(time_file), *map(str, args)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, args))} failed:\n{proc.stderr}")
    t = time_file.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", t).group(1)) / 1024
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.*)", t).group(1).split(":")
    return proc, sum(float(x) * 60 ** i for i, x in enumerate(reversed(wall))), rss


def perplexity(model, text, windows):
    proc = subprocess.run([CLI, "ppl", str(model), "--text", str(text), "--windows", str(windows), "--json"],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)["perplexity"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("CKPT_MODEL_GGUF", str(REPO / "models/SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--target-layers", type=int, default=21)
    ap.add_argument("--windows", type=int, default=16, help="ctx-512 windows of each held-out text")
    ap.add_argument("--out", default=str(REPO / "bench/out/heal-sweep"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    lines = WIKI_VALID.read_text().splitlines(keepends=True)
    wiki_calib, wiki_held = out / "wiki-valid-first-half.txt", out / "wiki-valid-second-half.txt"
    wiki_calib.write_text("".join(lines[:len(lines) // 2]))
    wiki_held.write_text("".join(lines[len(lines) // 2:]))
    docs = [json.loads(l)["text"] for l in open(SHARED / "data/c4/c4_validation_2k.jsonl")]
    c4_held = out / "c4-docs-1500-1999.txt"
    c4_held.write_text("\n\n".join(docs[1500:2000]) + "\n")
    corpora = {"wiki": [wiki_calib], "c4": [SHIPPED_C4], "mix": [wiki_calib, SHIPPED_C4]}

    student = out / f"come-{args.target_layers}"
    if not (student / "surgery.json").exists():
        log(f"pruning to {args.target_layers} layers with CoMe")
        timed([CLI, "prune", args.model, "--method", "come", "--target-layers", args.target_layers, "-o", student])
    rows = [{"corpus": "—", "nsamples": None, "ridge": None, "seconds": None, "peak_rss_mb": None,
             "wiki_valid_ppl": perplexity(student, wiki_held, args.windows),
             "c4_held_ppl": perplexity(student, c4_held, args.windows), "note": "unhealed"}]
    done = {}

    def candidate(corpus, nsamples, ridge):
        key = (corpus, nsamples, ridge)
        if key in done:
            return done[key]
        healed = out / f"healed-{corpus}-{nsamples}-{ridge}"
        calib = [x for path in corpora[corpus] for x in ("--calib", path)]
        log(f"heal: corpus {corpus}, {nsamples} × 512, ridge {ridge}")
        _, seconds, rss = timed([CLI, "heal", args.model, student, *calib, "--nsamples", nsamples, "--ridge", ridge,
                                 "-o", healed, "--force"])
        row = {"corpus": corpus, "nsamples": nsamples, "ridge": ridge, "seconds": round(seconds, 1),
               "peak_rss_mb": round(rss), "wiki_valid_ppl": perplexity(healed, wiki_held, args.windows),
               "c4_held_ppl": perplexity(healed, c4_held, args.windows), "note": ""}
        row["score"] = (row["wiki_valid_ppl"] * row["c4_held_ppl"]) ** 0.5
        rows.append(row)
        done[key] = row
        write(out, rows)
        return row

    best = lambda rs: min(rs, key=lambda r: r["score"])  # noqa: E731
    corpus = best([candidate(c, 32, 0.1) for c in corpora])["corpus"]
    ridge = best([candidate(corpus, 32, r) for r in (0.01, 0.1, 1.0)])["ridge"]
    winner = best([candidate(corpus, n, ridge) for n in (16, 32, 64)])
    for r in rows:
        if r is winner:
            r["note"] = "chosen"
    write(out, rows, quiet=False)


def write(out, rows, quiet=True):
    (out / "sweep.json").write_text(json.dumps(rows, indent=2))
    lines = ["| corpus | nsamples × 512 | ridge | wiki valid (held-out half) | C4 docs 1500–1999 | geo. mean | heal wall (s) | peak RSS (MB) | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        fmt = lambda v, f: "" if v is None else format(v, f)  # noqa: E731
        lines.append(f"| {r['corpus']} | {fmt(r['nsamples'], 'd')} | {fmt(r['ridge'], 'g')} | {r['wiki_valid_ppl']:.2f} | "
                     f"{r['c4_held_ppl']:.2f} | {fmt(r.get('score'), '.2f')} | {fmt(r['seconds'], '.1f')} | "
                     f"{fmt(r['peak_rss_mb'], 'd')} | {r['note']} |")
    (out / "sweep.md").write_text("\n".join(lines) + "\n")
    if not quiet:
        print("\n".join(lines))


if __name__ == "__main__":
    started = time.time()
    main()
    log(f"done in {time.time() - started:.0f} s")
