"""TERMA's divergent ray trace against the project's exact Siddon tracer (intrepid.physics.line_integrals)."""

from __future__ import annotations

import numpy as np

from intrepid.dose._ccc import fan_terma, sample_density
from intrepid.geometry import Grid, Quantity, Volume
from intrepid.geometry._frames import Frame, MachineAngles, frame_transform
from intrepid.physics import line_integrals

SAD = 1000.0


def test_fan_grid_radiological_depth_matches_siddon() -> None:
    """A monoenergetic TERMA, T = (SAD/z)² μ exp(−μ d), gives back the fan-line depth d; it must equal the
    exact line integral of the density from the source to the fan voxel centre. The fan grid integrates
    with the midpoint rule in steps of h = 4 mm, so at the phantom's entry face (oblique at gantry 30) it
    errs by up to ~h/2: within h/4 on average and 0.6 h at most."""
    h = 4.0
    n = 60
    grid = Grid((n, n, n), origin_mm=(-(n - 1) * h / 2,) * 3, spacing_mm=(h, h, h))
    x, y, z = (grid.origin_mm[a] + np.arange(n) * h for a in range(3))
    _, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    red = 1.0 + 0.4 * np.sin(xx / 37.0) * np.cos(yy / 53.0) - 0.5 * np.exp(-((xx - 20) ** 2 + yy**2) / 900.0)
    red = red.astype(np.float32)
    vol = Volume(red, grid, Quantity.RELATIVE_ELECTRON_DENSITY, "relative")
    angles = MachineAngles(30.0)
    bld_to_lps = frame_transform(Frame.BEAM_LIMITING_DEVICE, Frame.PATIENT_LPS, angles)
    index = np.eye(4)
    index[:3, :3] = np.diag([h, h, h])
    index[:3, 3] = grid.origin_mm
    bld_to_index = (np.linalg.inv(index) @ bld_to_lps)[:3]
    a = np.arange(-40.0, 40.1, h)
    b = np.arange(-40.0, 40.1, h)
    zc = np.arange(SAD - 200.0, SAD + 200.0, h)  # the whole phantom along the axis
    eta = sample_density(red, bld_to_index, a, b, zc, SAD)
    mu = np.array([0.05])  # cm²/g
    ray_step = h * np.sqrt(1.0 + (a[None, :] ** 2 + b[:, None] ** 2) / SAD**2) / 10.0
    spectrum = np.ones((b.size, a.size, 1))
    terma = fan_terma(eta, np.ones((b.size, a.size)), spectrum, mu, zc, ray_step, SAD).astype(float)
    depth_mm = -np.log(terma * (zc[:, None, None] / SAD) ** 2 / mu[0]) / mu[0] * 10.0
    # The same points in LPS, and the exact line integral from the source.
    kk, jj, ii = np.meshgrid(np.arange(zc.size), np.arange(b.size), np.arange(a.size), indexing="ij")
    zz_ = zc[kk]
    pts_bld = np.stack([a[ii] * zz_ / SAD, b[jj] * zz_ / SAD, SAD - zz_, np.ones_like(zz_)], axis=-1)
    pts = (pts_bld @ bld_to_lps.T)[..., :3]
    source = (bld_to_lps @ np.array([0.0, 0.0, SAD, 1.0]))[:3]
    exact = line_integrals(vol, source, pts)
    inside = np.all(np.abs(pts) < (n - 1) * h / 2 - 2 * h, axis=-1)
    diff = np.abs(depth_mm - exact)[inside]
    assert inside.sum() > 1000
    assert float(np.mean(diff)) < 0.25 * h
    assert float(np.max(diff)) < 0.6 * h
