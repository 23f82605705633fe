"""Every command shown in the README and in the tutorials runs as written.

Commands are the lines of ```` ```bash ```` blocks and the ``$ `` lines of ```` ```console ```` blocks, run in
order with ``bash`` in a scratch folder that stands for the repository root (``src`` is linked into it). A
console command whose shown output holds ``error:`` must fail with exactly one error line; any other must
succeed; none may print a traceback. ``python3 -m pip install`` steps are the reader's set-up, already done
here, and ``bash tools/test.sh`` is what runs this test: both are skipped. A block whose first line is
``# needs: external`` runs only where ``INTREPID_EXTERNAL_DATA`` is set (its commands name the files as
``"$INTREPID_EXTERNAL_DATA/..."``).

The README's commands always run (they include the main job, ``intrepid demo``: about two minutes on 2
cores); the tutorials' run with ``--run-slow``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIALS = sorted((ROOT / "docs" / "tutorials").glob("*.md"))


@dataclass(frozen=True)
class Command:
    text: str
    expect_error: bool
    external: bool
    line: int


def commands_of(markdown: Path) -> list[Command]:
    """The runnable commands of a Markdown file, in order (see the module docstring)."""
    out: list[Command] = []
    lines = markdown.read_text(encoding="utf-8").splitlines()
    n = 0
    while n < len(lines):
        fence = re.match(r"^```(bash|console)\s*$", lines[n])
        if not fence:
            n += 1
            continue
        kind, start = fence.group(1), n + 1
        end = start
        while end < len(lines) and not lines[end].startswith("```"):
            end += 1
        block = lines[start:end]
        external = bool(block) and block[0].strip() == "# needs: external"
        if kind == "bash":
            joined = "\n".join(block).replace("\\\n", " ")
            for k, cmd in enumerate(joined.splitlines()):
                if cmd.strip() and not cmd.lstrip().startswith("#"):
                    out.append(Command(cmd.strip(), False, external, start + k + 1))
        else:
            for k, row in enumerate(block):
                if row.startswith("$ "):
                    text, j = row[2:].rstrip(), k + 1
                    while text.endswith("\\") and j < len(block):  # continuation lines
                        text, j = text[:-1] + " " + block[j].strip(), j + 1
                    shown = []
                    for later in block[j:]:
                        if later.startswith("$ "):
                            break
                        shown.append(later)
                    error = any(" error: " in s for s in shown)
                    out.append(Command(text.strip(), error, external, start + k + 1))
        n = end + 1
    return out


def _setup_step(segment: str) -> bool:
    return segment.strip().startswith(("python3 -m pip install", "pip install", "bash tools/test.sh"))


def run_document(markdown: Path, scratch: Path) -> None:
    scratch.mkdir(parents=True, exist_ok=True)
    if not (scratch / "src").exists():
        (scratch / "src").symlink_to(ROOT / "src")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    external_root = os.environ.get("INTREPID_EXTERNAL_DATA")
    ran = 0
    for cmd in commands_of(markdown):
        segments = [s for s in cmd.text.split("&&") if not _setup_step(s)]
        if not segments:
            continue
        if cmd.external and not external_root:
            continue
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", " && ".join(s.strip() for s in segments)],
            cwd=scratch,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
        label = f"{markdown.name}:{cmd.line}: {cmd.text}"
        clean = "Traceback" not in done.stderr and "internal error" not in done.stderr
        assert clean, label + "\n" + done.stderr
        if cmd.expect_error:
            errors = [line for line in done.stderr.splitlines() if " error: " in line]
            assert done.returncode != 0 and len(errors) == 1, label + "\n" + done.stderr
        else:
            assert done.returncode == 0, label + f"\nexit {done.returncode}\n" + done.stderr[-3000:]
        ran += 1
    assert ran, f"{markdown.name}: no command was run"


@pytest.mark.docs
def test_readme_commands_run_as_written(tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the README's demo needs the 'ml' extra")
    run_document(ROOT / "README.md", tmp_path)


@pytest.mark.docs
@pytest.mark.slow
@pytest.mark.parametrize("tutorial", TUTORIALS, ids=[t.stem for t in TUTORIALS])
def test_tutorial_commands_run_as_written(tutorial: Path, tmp_path: Path) -> None:
    run_document(tutorial, tmp_path)


def test_the_parser_finds_commands_and_expected_errors() -> None:
    readme = commands_of(ROOT / "README.md")
    assert any(c.text.startswith("intrepid demo") for c in readme)
    tour = commands_of(ROOT / "docs" / "tutorials" / "first-tour.md")
    assert any(c.expect_error and "nonexistent.dcm" in c.text for c in tour)
    assert any(c.external for c in tour)
