"""The layers of STYLE.md: nothing imports upwards; analysis and physics never import learn (or torch)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "intrepid"
#: Layer of each sub-package, bottom (0) to top (8); equal layers may not import each other either.
LAYERS = {
    "geometry": 0,
    "dicom": 1,
    "analysis": 2,
    "physics": 2,
    "dose": 3,
    "learn": 3,
    "simulate": 4,
    "transit": 5,
    "devices": 5,
    "invivo": 6,
    "report": 7,
    "app": 8,
    "cli": 8,
}
IMPORT = re.compile(r"^\s*(?:from|import)\s+intrepid\.(\w+)", re.MULTILINE)


def _imports(path: Path) -> set[str]:
    return {m.group(1) for m in IMPORT.finditer(path.read_text(encoding="utf-8"))}


@pytest.mark.parametrize("package", sorted(LAYERS))
def test_no_upward_or_sideways_imports(package: str) -> None:
    offenders = []
    for path in sorted((SRC / package).rglob("*.py")):
        for target in _imports(path) & LAYERS.keys():
            if target != package and LAYERS[target] >= LAYERS[package]:
                offenders.append(f"{path.relative_to(SRC)} imports intrepid.{target}")
    assert not offenders, "; ".join(offenders)


@pytest.mark.parametrize("package", ["geometry", "dicom", "analysis", "physics", "dose", "simulate"])
def test_torch_stays_out_of_the_lower_layers(package: str) -> None:
    for path in (SRC / package).rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        module_level = [line for line in text.splitlines() if re.match(r"^(import torch|from torch)", line)]
        assert not module_level, f"{path.relative_to(SRC)} imports torch at module level"
