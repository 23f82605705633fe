"""The gamma map drawn as a PNG (``intrepid.report._gamma_png``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from intrepid.errors import ParameterError
from intrepid.geometry import Grid, Volume
from intrepid.report._gamma_png import write_gamma_png


def test_three_planes_through_the_worst_point(tmp_path):
    grid = Grid((12, 20, 16), origin_mm=(-15.0, -19.0, -11.0), spacing_mm=(2.0, 2.0, 2.0))
    g = np.full(grid.shape, np.nan)
    g[2:10, 4:16, 3:13] = 0.3
    g[6, 10, 8] = 1.7  # the worst point: the planes go through it
    out = write_gamma_png(Volume(g, grid), tmp_path / "g.png")
    img = np.asarray(Image.open(out).convert("RGB"), dtype=float)
    assert img.shape[1] > 2.5 * img.shape[0]  # three panels side by side
    # a warm (failing) pixel is drawn somewhere
    assert ((img[..., 0] > 150) & (img[..., 2] < 100)).any()


def test_empty_map_is_refused(tmp_path):
    grid = Grid((4, 4), origin_mm=(0.0, 0.0, 0.0), spacing_mm=(1.0, 1.0, 1.0))
    with pytest.raises(ParameterError, match="no evaluated point"):
        write_gamma_png(Volume(np.full((4, 4), np.nan), grid), tmp_path / "g.png")
    assert not (tmp_path / "g.png").exists()
