"""Smoke test of the prepared GPU benchmark (``benchmarks/bench_gpu.py --dry-run``): every section runs.

No GPU here: numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``, in the subprocess only) stands in for it, so
the cuda rows run the real kernel at toy sizes; their pass / fail decisions must equal numba's. The timings
of a dry run mean nothing and are not checked.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_bench_gpu_dry_run_measures_every_section(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH", "")) if p)
    out, md = tmp_path / "gpu.json", tmp_path / "gpu.md"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--dry-run", "--out", str(out)]
    done = subprocess.run(
        [*cmd, "--markdown", str(md)], capture_output=True, text=True, env=env, timeout=600, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    r = json.loads(out.read_text())
    assert r["dry_run"] is True
    assert len(r["gamma"]) == 2
    for row in r["gamma"]:
        assert row["cuda_same_decisions"] and row["cuda_pass_rate_percent"] == row["numba_pass_rate_percent"]
        assert row["torch_same_decisions"]
    assert r["gamma_batch"]["cuda_same_decisions"] is True and r["gamma_batch"]["images"] == 2
    assert r["training"]["runs"] == 2 and r["training"]["stacked_images_per_s"] > 0
    assert r["inference_2d"]["load_s"] > 0 and r["inference_2d"]["images"] == 2
    assert r["inference_3d"] is None or r["inference_3d"]["volumes"] == 1
    table = md.read_text()
    assert "DRY RUN" in table and "| batched 2D gamma |" in table and "| training" in table
