"""Reconstruction: frames of one beam (arc sectors) are summed; methods differ as documented."""

from __future__ import annotations

import numpy as np
import pytest

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.invivo import InvivoBaseline, Method, PortalImage, reconstruct


def _ct() -> Volume:
    g = Grid((10, 30, 30), (-58.0, -58.0, -18.0), (4.0, 4.0, 4.0))
    return Volume(np.zeros(g.shape, np.float32), g, Quantity.CT_NUMBER, "HU", "1.2.3")


def _frame(gantry: float, beam: int, value: float = 0.5) -> PortalImage:
    a = np.zeros((128, 128))
    a[48:80, 48:80] = value
    return PortalImage(a, (3.24, 3.24), gantry, 1600.0, 1000.0, (0.0, 0.0, 0.0), beam)


def test_frames_of_one_beam_are_summed() -> None:
    ct = _ct()
    one = reconstruct([_frame(0.0, 1)], ct, method="fod")
    arc = reconstruct([_frame(0.0, 1), _frame(0.0, 1)], ct, method=Method.FOD)
    assert list(arc.beam_doses) == [1]
    np.testing.assert_allclose(arc.total.array, 2 * one.total.array, rtol=1e-6)
    two = reconstruct(
        [_frame(0.0, 1), _frame(180.0, 2)], ct, method="baseline", baseline=InvivoBaseline(1.0, 2.0, 2.0)
    )
    assert sorted(two.beam_doses) == [1, 2]
    np.testing.assert_allclose(two.total.array, two.beam_doses[1].array + two.beam_doses[2].array, rtol=1e-5)


def test_the_baseline_scales_linearly_with_the_portal_dose() -> None:
    ct = _ct()
    bl = InvivoBaseline(1.1, 4.0, 2.0)
    a = reconstruct([_frame(90.0, 1, 0.5)], ct, baseline=bl).total.array
    b = reconstruct([_frame(90.0, 1, 1.0)], ct, baseline=bl).total.array
    np.testing.assert_allclose(b, 2 * a, rtol=1e-5, atol=1e-7)


def test_network_method_needs_a_network() -> None:
    with pytest.raises(ParameterError, match="needs a network"):
        reconstruct([_frame(0.0, 1)], _ct(), method="network")
    with pytest.raises(ParameterError, match="no portal images"):
        reconstruct([], _ct())
