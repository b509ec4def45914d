"""The CLI's documentation stays current with its argument parser."""
import re

from conftest import REPO, run

SUBCOMMANDS = ["inspect", "convert", "tokenize", "ppl", "generate", "logits", "scores", "merge", "prune", "heal", "verify", "export", "eval"]


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
