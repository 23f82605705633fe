"""A gamma map as a PNG picture (``intrepid gamma --gamma-map gamma.png``).

2D maps are drawn as they are; 3D maps as three orthogonal planes through the evaluated point with the
highest γ (where a physicist looks first). Axes in mm (patient coordinates for 3D, detector or world axes for
2D), a colour bar labelled γ, failing points (γ > 1) in warm colours, points below the cut-off left blank.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from intrepid.dicom._common import atomic_write
from intrepid.errors import ParameterError
from intrepid.geometry import Volume

__all__ = ["write_gamma_png"]


def write_gamma_png(gamma_map: Volume, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """Draw ``gamma_map`` (NaN below the cut-off) into the PNG file ``path``, atomically.

    Raises
    ------
    ParameterError
        A map without any evaluated point.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.colors import TwoSlopeNorm

    g = np.asarray(gamma_map.array, dtype=np.float64)
    finite = np.isfinite(g)
    if not finite.any():
        raise ParameterError("the gamma map has no evaluated point (everything is below the cut-off)")
    vmax = max(2.0, float(np.nanmax(g)))
    norm = TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=vmax)
    x, y, z = gamma_map.grid.world_axes_mm()
    planes: list[tuple[np.ndarray, np.ndarray, np.ndarray, str, str, str]] = []
    if g.ndim == 2 or g.shape[0] == 1:
        img = g if g.ndim == 2 else g[0]
        planes.append((img, x, y, "x (mm)", "y (mm)", ""))
    else:
        k, j, i = np.unravel_index(int(np.nanargmax(np.where(finite, g, -np.inf))), g.shape)
        planes.append((g[k], x, y, "x (mm)", "y (mm)", f"axial z = {z[k]:.1f} mm"))
        planes.append((g[:, j, :], x, z, "x (mm)", "z (mm)", f"coronal y = {y[j]:.1f} mm"))
        planes.append((g[:, :, i], y, z, "y (mm)", "z (mm)", f"sagittal x = {x[i]:.1f} mm"))
    fig, axes = plt.subplots(1, len(planes), figsize=(5.2 * len(planes), 4.6), squeeze=False)
    image = None
    for ax, (img, u, v, xl, yl, name) in zip(axes[0], planes, strict=True):
        extent = (u[0], u[-1], v[-1], v[0])
        image = ax.imshow(
            np.ma.masked_invalid(img), cmap="RdYlBu_r", norm=norm, extent=extent, aspect="equal",
            interpolation="nearest",
        )
        ax.set_xlabel(xl, fontsize=11)
        ax.set_ylabel(yl, fontsize=11)
        ax.tick_params(labelsize=10)
        if name:
            ax.set_title(name, fontsize=11)
    assert image is not None
    bar = fig.colorbar(image, ax=axes[0].tolist(), shrink=0.85)
    bar.set_label("γ (dimensionless; > 1 fails)", fontsize=11)
    passed = float(np.mean(g[finite] <= 1.0) * 100.0)
    fig.suptitle(title or f"gamma map: {passed:.2f} % of {int(finite.sum())} points pass", fontsize=12)
    out = Path(path)
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return out
