#!/usr/bin/env bash
# Install everything (pinned PyTorch first, then the package with its ml, dev and docs extras) and run the
# checks: ruff (lint), mypy (types) and pytest, which also builds the documentation site with warnings as
# errors (tests/test_docs.py) and runs the README's commands as written (tests/test_docs_examples.py). The
# README's second command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet --disable-pip-version-check torch==2.13.0
python3 -m pip install --quiet --disable-pip-version-check -e ".[ml,ray,dev,docs,app]"
# Headless Chromium renders the HTML report in its test (Debian package); skipped where it cannot be installed.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
        || echo "warning: could not install chromium; the report rendering test will be skipped"
fi
# The review app's tests start a throwaway PostgreSQL cluster (initdb/pg_ctl) when the server binaries exist;
# skipped with the reason otherwise.
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
        || echo "warning: could not install postgresql; the PostgreSQL tests of the review app will be skipped"
fi
if [ -z "${INTREPID_EXTERNAL_DATA:-}" ] && [ -d ../shared/data ]; then
    INTREPID_EXTERNAL_DATA="$(cd ../shared/data && pwd)"
    export INTREPID_EXTERNAL_DATA
fi
echo "== ruff"; python3 -m ruff check src tests benchmarks tools
echo "== mypy"; python3 -m mypy
echo "== pytest"; python3 -m pytest "$@"
