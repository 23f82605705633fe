"""Geometric range compensator against plastimatch (``plastimatch dose``, passive beam line), ray by ray.

The plastimatch driver (command file, output reading, unit conversions) lives in
``benchmarks/bench_compensator.py``, whose docstring explains plastimatch's definitions; these tests load it
from the repository. Tests that run plastimatch are marked ``peer`` and skip, with the reason, where the
executable is not found (``INTREPID_PLASTIMATCH``, ``PATH``, /work/venvs/plastimatch/bin/plastimatch).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from intrepid.devices import BeamGeometry, CompensatorSettings, design_compensator
from intrepid.geometry import Grid, Quantity, Volume

_BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_compensator.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    if not _BENCH.is_file():
        pytest.skip(f"benchmark driver {_BENCH} not found")
    spec = importlib.util.spec_from_file_location("intrepid_bench_compensator", _BENCH)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses resolve their module through sys.modules
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def plastimatch(bench: ModuleType) -> str:
    pytest.importorskip("SimpleITK", reason="SimpleITK writes plastimatch's .mha inputs")
    exe = bench.find_plastimatch()
    if exe is None:
        pytest.skip("plastimatch executable not found: set INTREPID_PLASTIMATCH or put plastimatch on PATH")
    return str(exe)


def _phantom() -> tuple[Volume, Volume]:
    """41 x 57 x 41 mm water phantom (1 mm voxels): air above y = -25.5 mm, a full-width lung-like slab
    (-500 HU, RSP 0.5 in both programs) at -20.5 < y < -15.5 mm, an off-centre ellipsoid target (asymmetric
    in x and z, so a flipped row or column order of either map would show)."""
    g = Grid((41, 57, 41), origin_mm=(-20, -28, -20), spacing_mm=(1, 1, 1))
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    hu = np.where(y >= -25.5, 0.0, -1000.0)
    hu = np.where((y > -20.5) & (y < -15.5), -500.0, hu)
    target = ((x - 3.0) / 12.0) ** 2 + (y / 10.0) ** 2 + ((z + 2.0) / 8.0) ** 2 <= 1.0
    return Volume(hu.astype(np.float32), g, Quantity.CT_NUMBER), Volume(target, g, Quantity.MASK)


@pytest.mark.peer
def test_compensator_matches_plastimatch_on_interior_rays(
    bench: ModuleType, plastimatch: str, tmp_path: Path
) -> None:
    ct, target = _phantom()
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    ours = design_compensator(ct, target, geo, CompensatorSettings(pixel_spacing_mm=1.0, field_margin_mm=2.0))
    pm = bench.run_plastimatch(plastimatch, tmp_path, ct, target, ours, ray_step_mm=1.0)

    # the same rays: plastimatch's upper-left aperture pixel is our pixel [0, 0] (both printed to 1e-6 mm)
    assert pm.ul_error_mm < 1e-3
    # plastimatch's rc_out is PMMA mm with WER 0.98 x 1.19: rays that miss hold max_wed / 1.1662 exactly
    # (float32 output, max_wed printed with 6 digits: 1e-4 relative)
    miss = ~pm.target_rays
    assert miss.any()
    np.testing.assert_allclose(pm.rc_pmma_mm[miss] * bench.PLASTIMATCH_PMMA_WER, pm.max_wed_mm, rtol=1e-4)

    # target rays: plastimatch's target (trilinear mask >= 0.2) reaches ~0.3 voxel beyond our voxel faces,
    # so it holds every ray of ours plus a few grazing ones
    hit = np.isfinite(ours.distal_wepl_mm)
    assert np.all(pm.target_rays[hit])
    assert np.mean(hit == pm.target_rays) > 0.95

    stats = bench.compare(ours, pm)
    assert stats["interior_rays"] >= 100
    inner = bench.interior_rays(hit, pm.target_rays)
    d_distal = (ours.distal_wepl_mm - pm.distal_wed_mm)[inner]
    # plastimatch accumulates WED by the rectangle rule, each 1 mm sample carrying its whole step: its WED
    # at a point in water is the exact integral + 0.5 mm; ours is the exact Siddon integral
    offset = float(np.median(d_distal))
    assert offset == pytest.approx(-0.5, abs=0.05)
    # per ray, the distal surface is found on 1 mm ray samples by plastimatch (the last sample whose
    # interpolated target is >= 0.2) and at the exact voxel-face exit by us: they differ by the sample
    # quantisation, at most one ray step (1 mm of water) where the exit is on a side face of the staircase
    assert np.max(np.abs(d_distal - offset)) <= 1.0 + 0.01
    assert np.mean(np.abs(d_distal - offset) <= 0.01) > 0.9  # exits on the voxel faces the samples hit
    # the compensators (each relative to its own deepest ray: the 0.5 mm offset cancels), in water mm
    d_wet = (ours.thickness_mm * ours.material.relative_stopping_power - pm.wet_mm)[inner]
    assert np.max(np.abs(d_wet - np.median(d_wet))) <= 1.0 + 0.01
    assert abs(float(np.mean(d_wet))) < 0.1


def test_plastimatch_config_places_the_aperture_from_the_source(bench: ModuleType) -> None:
    # the cause of the earlier constant map: aperture_offset is the source-to-aperture distance
    ct, target = _phantom()
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    ours = design_compensator(ct, target, geo, CompensatorSettings(pixel_spacing_mm=2.0, field_margin_mm=2.0))
    cfg = bench.plastimatch_config(ours)
    keys = [line.split("=")[0].strip() for line in cfg.splitlines() if "=" in line]
    lines = dict(line.split("=", 1) for line in cfg.splitlines() if "=" in line)
    lines = {k.strip(): v.strip() for k, v in lines.items()}
    assert float(lines["aperture_offset"]) == pytest.approx(2000.0 - ours.isocenter_to_compensator_mm)
    rows, cols = ours.shape
    assert lines["aperture_resolution"] == f"{cols} {rows}"
    x0, y0 = ours.first_pixel_mm
    assert [float(v) for v in lines["aperture_origin"].split()] == pytest.approx([x0, -y0])
    # plastimatch converts the origin to pixels with the spacing it has when it reads the key, and a new
    # resolution resets the centre: resolution and spacing must come first
    assert keys.index("aperture_resolution") < keys.index("aperture_origin")
    assert keys.index("aperture_spacing") < keys.index("aperture_origin")


def test_plastimatch_config_refuses_a_dual_source(bench: ModuleType) -> None:
    ct, target = _phantom()
    geo = BeamGeometry(sad_mm=(2000.0, 1800.0))
    ours = design_compensator(ct, target, geo, CompensatorSettings(pixel_spacing_mm=2.0, field_margin_mm=2.0))
    with pytest.raises(ValueError, match="point source only"):
        bench.plastimatch_config(ours)
