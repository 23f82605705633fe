"""Geometric range compensator: InTrEPID against plastimatch (``plastimatch dose``, passive beam line).

Phantom: water box (0 HU) below y = -50.5 mm with air (-1000 HU) above, 1 mm voxels, a sphere of radius
25 mm at the isocentre as target; beam from anterior (source at y = -2000 mm), compensator / aperture plane
200 mm from the isocentre, 41 x 41 rays at 2 mm at that plane, no margins, no smearing.

plastimatch (pip package ``plastimatch``, run from the venv in ``PLASTIMATCH``, default
/work/venvs/plastimatch/bin/plastimatch) writes its compensator (``rc_out``) and prints the minimum and
maximum water-equivalent depth of the target. Both runs are timed in the same run; the script prints a
markdown table. Run: ``python3 benchmarks/bench_compensator.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import numpy as np

from intrepid.devices import BeamGeometry, CompensatorSettings, design_compensator
from intrepid.geometry import Grid, Quantity, Volume

DATA = Path(__file__).parent / "_data" / "compensator"
PLASTIMATCH = os.environ.get("PLASTIMATCH", "/work/venvs/plastimatch/bin/plastimatch")
CFG = """[PLAN]
patient = ct.mha
target = target.mha
threading = single
dose_out = dose.mha

[BEAM]
beam_line = passive
source = 0 -2000 0
isocenter = 0 0 0
aperture_offset = 200
aperture_resolution = 41 41
aperture_spacing = 2 2
aperture_smearing = 0
proximal_margin = 0
distal_margin = 0
rc_out = rc.mha
proj_target_out = pt.mha
"""


def phantom() -> tuple[Volume, Volume]:
    g = Grid((81, 111, 81), origin_mm=(-40, -55, -40), spacing_mm=(1, 1, 1))
    ax = [g.origin_mm[a] + g.axis_coordinates_mm(a) for a in range(3)]
    z, y, x = np.meshgrid(ax[2], ax[1], ax[0], indexing="ij")
    ct = Volume(np.where(y >= -50.5, 0.0, -1000.0), g, Quantity.CT_NUMBER)
    target = Volume(x**2 + y**2 + z**2 <= 25.0**2, g, Quantity.MASK)
    return ct, target


def run_plastimatch(ct: Volume, target: Volume) -> dict[str, object]:
    import SimpleITK as sitk

    if not Path(PLASTIMATCH).is_file():
        return {"error": f"plastimatch not found at {PLASTIMATCH}"}
    DATA.mkdir(parents=True, exist_ok=True)
    for arr, name in ((ct.array, "ct.mha"), (target.array, "target.mha")):
        im = sitk.GetImageFromArray(np.asarray(arr, dtype=np.float32))
        im.SetOrigin(ct.grid.origin_mm)
        im.SetSpacing(ct.grid.spacing_mm)
        sitk.WriteImage(im, str(DATA / name))
    (DATA / "rc.cfg").write_text(CFG)
    t0 = time.perf_counter()
    proc = subprocess.run([PLASTIMATCH, "dose", "--command-file", "rc.cfg"], cwd=DATA, capture_output=True,
                          text=True, timeout=600, check=False)
    seconds = time.perf_counter() - t0
    log = proc.stdout + proc.stderr
    (DATA / "plastimatch.log").write_text(log)
    out: dict[str, object] = {"seconds": seconds, "returncode": proc.returncode}
    m = re.search(r"Max wed in the target is ([0-9.]+)", log)
    n = re.search(r"Min wed in the target is ([0-9.]+)", log)
    out["max_wed_mm"] = float(m.group(1)) if m else None
    out["min_wed_mm"] = float(n.group(1)) if n else None
    if (DATA / "rc.mha").is_file():
        rc = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "rc.mha"))).squeeze()
        out["rc"] = rc
        pt = sitk.GetArrayFromImage(sitk.ReadImage(str(DATA / "pt.mha.nrrd")))
        out["projected_target_samples"] = int((pt > 0).sum())
    return out


def main() -> None:
    ct, target = phantom()
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0))
    settings = CompensatorSettings(pixel_spacing_mm=2.0, field_margin_mm=0.0)
    design_compensator(ct, target, geo, settings)  # warm-up (numba compile of the ray tracer)
    t0 = time.perf_counter()
    ours = design_compensator(ct, target, geo, settings)
    ours_s = time.perf_counter() - t0
    distal = ours.distal_wepl_mm
    ref = run_plastimatch(ct, target)
    print("| quantity | InTrEPID | plastimatch 1.10.0 |")
    print("|---|---|---|")
    print(f"| max distal WEPL of the target (mm) | {np.nanmax(distal):.2f} | {ref.get('max_wed_mm')} |")
    print("| min WEPL of the target (mm, proximal surface) | 25.50 (closed form) | "
          f"{ref.get('min_wed_mm')} |")
    print(f"| design time (s) | {ours_s:.3f} | {ref.get('seconds', float('nan')):.3f} |")
    hit = np.isfinite(distal)
    print(f"| rays crossing the target | {int(hit.sum())} of {distal.size} | projected-target samples: "
          f"{ref.get('projected_target_samples')} |")
    if "rc" in ref:
        rc = np.asarray(ref["rc"])
        t_max = float(np.nanmax((ours.beam_range_mm - distal) / 1.165))
        lo = float(np.nanmin(ours.thickness_mm[hit]))
        print(f"| thickness range on target rays (mm) | {lo:.2f}–{t_max:.2f} | "
              f"{rc.min():.2f}–{rc.max():.2f} ({np.unique(np.round(rc, 1)).size} distinct values) |")
    print()
    print(f"plastimatch log: {DATA / 'plastimatch.log'}; rc map: {DATA / 'rc.mha'}")


if __name__ == "__main__":
    main()
