"""The documentation site builds without a single warning, and the README's links resolve.

``mkdocs build --strict`` fails on any warning: a page missing from the navigation, a broken internal link or
anchor, a docstring mkdocstrings cannot parse. The README is not part of the site, so its relative links are
checked here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _anchors(markdown: Path) -> set[str]:
    """GitHub-style anchors of the headings of a Markdown file."""
    out = set()
    in_code = False
    for line in markdown.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        if not in_code and line.startswith("#"):
            text = line.lstrip("#").strip().lower()
            text = re.sub(r"[^\w\- ]", "", text).replace(" ", "-")
            out.add(text)
    return out


@pytest.mark.docs
def test_site_builds_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="the 'docs' extra is not installed (pip install -e '.[docs]')")
    pytest.importorskip("mkdocstrings", reason="the 'docs' extra is not installed (pip install -e '.[docs]')")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "api" / "dicom.html").stat().st_size > 10_000  # the API was generated


def test_readme_is_a_front_page_whose_links_resolve() -> None:
    assert README.stat().st_size <= 15 * 1024, "the README must stay a front page (<= 15 KB)"
    text = README.read_text(encoding="utf-8")
    broken = []
    for target in _LINK.findall(text):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = target.partition("#")
        resolved = (README.parent / path) if path else README
        if not resolved.exists():
            broken.append(target)
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(target)
    assert not broken, f"broken README links: {broken}"
