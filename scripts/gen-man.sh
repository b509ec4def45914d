#!/usr/bin/env bash
# Regenerates man/ckpt-surgeon.1 from the argument parser (swift-argument-parser's
# generate-manual plugin). tests/interop/test_cli.py fails when the page is stale.
set -euo pipefail
cd "$(dirname "$0")/.."
swift package --allow-writing-to-package-directory generate-manual --output-directory man >&2
# The plugin stamps the build date; drop it so the page only changes when the CLI does.
sed -i '/^\.Dd /d' man/ckpt-surgeon.1
