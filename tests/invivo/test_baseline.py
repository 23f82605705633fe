"""Physics-only baseline: the least-squares fit recovers known parameters; files round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.invivo import InvivoBaseline, apply_baseline, fit_baseline, load_baseline


def _fod() -> tuple[Volume, np.ndarray]:
    g = Grid((24, 24, 24), (0.0, 0.0, 0.0), (4.0, 4.0, 4.0))
    a = np.zeros(g.shape, np.float32)
    a[:, 8:16, 8:16] = 1.0  # a 32 mm square beam along the slice axis
    entrance = np.broadcast_to(np.arange(24, dtype=float)[:, None, None] * 4.0, g.shape).copy()
    return Volume(a, g, Quantity.DOSE, "Gy"), entrance


@pytest.mark.parametrize("broad", [False, True])
def test_fit_recovers_a_single_gaussian_model(broad: bool) -> None:
    fod, ent = _fod()
    truth = InvivoBaseline(scale=1.3, sigma_mm=3.0, buildup_mm=2.0)
    target = apply_baseline(fod, ent, truth)
    fitted = fit_baseline([(fod, ent, target)], broad_scatter=broad)
    again = apply_baseline(fod, ent, fitted)
    m = target.array >= 0.1 * target.array.max()
    assert np.abs(again.array - target.array)[m].max() < 0.02 * target.array.max()
    if not broad:
        assert (fitted.scale, fitted.sigma_mm, fitted.buildup_mm) == pytest.approx((1.3, 3.0, 2.0), rel=1e-3)


def test_baseline_file_round_trip(tmp_path: Path) -> None:
    b = InvivoBaseline(1.2, 2.0, 2.0, "test", 0.3, 15.0, 0.001)
    assert load_baseline(b.save(tmp_path / "b.json")) == b
    (tmp_path / "x.json").write_text('{"kind": "other"}')
    with pytest.raises(ParameterError, match="not an InTrEPID in-vivo baseline"):
        load_baseline(tmp_path / "x.json")
    with pytest.raises(ParameterError, match="scale must be > 0"):
        InvivoBaseline(scale=0.0)
