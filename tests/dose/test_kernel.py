"""The shipped EDKnrc kernel: provenance, licence, normalisation and the quality of the collapsed-cone fit."""

from __future__ import annotations

import json
from importlib import resources

import numpy as np
import pytest

from intrepid.dose import cone_kernel
from intrepid.dose._kernel import DEFAULT_ZENITH_EDGES_DEG, _cumulative, _fit_cone, edk_table


def _raw() -> dict:
    text = resources.files("intrepid.dose").joinpath("data/edk_6mv_varian.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def test_table_is_the_upstream_file() -> None:
    """48 x 24 values of samuelpeet/conehead kerneldata/varian_6.csv (commit 4733134), spot-checked here.

    The whole table was compared value by value with the upstream file (docs/dose.md, "Kernel"); these spot
    values and the sum pin it against an accidental edit.
    """
    v = np.asarray(_raw()["values"], dtype=float)
    assert v.shape == (48, 24)
    assert float(v.sum()) == pytest.approx(0.303079848, rel=1e-9)
    assert v[0, 0] == 3.39e-4  # 0-3.75 deg, 0-0.05 cm
    assert v[23, 10] == 4.73e-5  # 86.25-90 deg, 1-1.5 cm
    assert v[47, 23] == 1.61e-6  # 176.25-180 deg, 50-60 cm


def test_licence_notice_ships_next_to_the_data() -> None:
    text = resources.files("intrepid.dose").joinpath("data/LICENSE-conehead.txt").read_text(encoding="utf-8")
    assert "Copyright (c) 2018 samuelpeet" in text
    assert "The above copyright notice and this permission notice shall be included" in text


def test_table_is_a_total_kernel_forward_peaked_near_the_origin() -> None:
    """The 0.303 sum is a uniform scale, not a missing primary part: the first shell holds primary electrons.

    Energy per steradian in the innermost shell is > 100 x larger forward (0-3.75 deg) than backward.
    """
    v = np.asarray(_raw()["values"], dtype=float)
    edges = np.deg2rad(np.asarray(_raw()["theta_edges_deg"], dtype=float))
    solid = 2 * np.pi * (np.cos(edges[:-1]) - np.cos(edges[1:]))
    per_sr = v[:, 0] / solid
    assert per_sr[0] > 100 * per_sr[-1]


@pytest.mark.parametrize("cone", range(len(DEFAULT_ZENITH_EDGES_DEG) - 1))
def test_two_exponential_fit_follows_the_table(cone: int) -> None:
    """Cumulative energy of the fit within 10 % of the cone's energy at every tabulated radius (0.05-60 cm).

    The first fit missed by up to 50 % (backward cones) and 6-9 % within 2 cm of the forward cones.
    """
    k = cone_kernel()
    t = edk_table()
    lo, hi = np.searchsorted(t.theta_edges_deg, DEFAULT_ZENITH_EDGES_DEG[cone : cone + 2])
    cum = np.cumsum(t.values[lo:hi].sum(axis=0))
    r = t.radius_edges_cm[1:]
    fit = _cumulative(r, *_fit_cone(r, cum))
    assert np.max(np.abs(fit - cum)) < 0.10 * cum[-1]
    assert fit[-1] == pytest.approx(cum[-1], rel=1e-9)
    assert k.fraction_within() == pytest.approx(1.0, rel=1e-9)
