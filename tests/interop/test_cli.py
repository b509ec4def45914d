"""The CLI's documentation stays current with its argument parser."""
import re

from conftest import REPO, run

SUBCOMMANDS = ["inspect", "convert", "tokenize", "ppl", "generate", "logits", "gradients", "scores", "merge", "prune", "heal", "distill", "verify", "export", "eval"]


def test_man_page_lists_every_subcommand_and_option():
    page = (REPO / "man/ckpt-surgeon.1").read_text()
    for sub in SUBCOMMANDS:
        assert f".It Em {sub}" in page, f"{sub} missing from man/ckpt-surgeon.1: run scripts/gen-man.sh"
        help_text = run(sub, "--help").stdout
        documented = "\n".join(line for line in page.splitlines() if line.startswith(".It Fl"))
        for option in set(re.findall(r"--[a-z][a-z0-9-]+", help_text)) - {"--help"}:
            assert re.search(rf"(?<![\w-])-{option[2:]}(?![\w-])", documented), \
                f"{sub} {option} missing from the man page: run scripts/gen-man.sh"


def test_help_has_examples_and_stdout_stays_data():
    for sub in SUBCOMMANDS:
        assert "Examples:" in run(sub, "--help").stdout
    assert run("--version").stdout.strip()


def test_installed_binary_runs_from_anywhere_with_its_resources(tmp_path, tiny):
    """scripts/install.sh PREFIX: the wrapper in PREFIX/bin finds the binary's resource
    bundles (shipped corpora, wikitext-2 test split) from any working directory."""
    import subprocess
    prefix = tmp_path / "prefix"
    subprocess.run(["bash", str(REPO / "scripts/install.sh"), str(prefix)], check=True, capture_output=True)
    exe = prefix / "bin/ckpt-surgeon"
    assert (prefix / "share/man/man1/ckpt-surgeon.1").read_text() == (REPO / "man/ckpt-surgeon.1").read_text()
    help_text = subprocess.run([str(exe), "--help"], cwd="/", capture_output=True, text=True, check=True).stdout
    assert "heal" in help_text
    # ppl's default text and the default calibration corpus both come from the bundles.
    ppl = subprocess.run([str(exe), "ppl", str(tiny / "llama-mha"), "--ctx", "64", "--windows", "2"], cwd="/",
                         capture_output=True, text=True, check=True).stdout
    assert ppl.startswith("perplexity ")
    scores = subprocess.run([str(exe), "scores", str(tiny / "llama-mha"), "--nsamples", "2", "--seqlen", "16"], cwd="/",
                            capture_output=True, text=True, check=True).stdout
    assert "wikitext-2-raw validation (shipped)" in scores


def test_ppl_default_text_is_the_wikitext2_test_split(tiny):
    """The shipped zstd copy is byte-identical to the shared wiki.test.raw, so the default
    text and --text give the same figure."""
    from conftest import SHARED
    import json
    args = ["ppl", tiny / "llama-mha", "--ctx", "64", "--windows", "4", "--json"]
    default = json.loads(run(*args).stdout)
    explicit = json.loads(run(*args, "--text", SHARED / "data/wikitext-2-raw/wiki.test.raw").stdout)
    assert default["perplexity"] == explicit["perplexity"] and default["scored_tokens"] == explicit["scored_tokens"]
