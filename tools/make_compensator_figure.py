"""Make docs/images/compensator_tg119.png: a range compensator for the TG-119 C-shape and its proton dose.

Run: ``python3 tools/make_compensator_figure.py [TG119.mat]`` (default ../shared/data/tg119/TG119.mat).
Left: the compensator thickness (mm) at the device plane; right: an axial CT slice with the pencil-beam dose
(Hong 1996) of the field through the compensator, and the target outline.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import numpy as np

from intrepid.devices import BeamGeometry, CompensatorSettings, design_compensator
from intrepid.dicom import read_matrad_phantom
from intrepid.physics import hu_to_relative_stopping_power, pencil_beam_dose, spread_out_bragg_peak

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mat = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "tg119" / "TG119.mat"
    ph = read_matrad_phantom(mat)
    target = ph.structures["OuterTarget"]
    idx = np.argwhere(np.asarray(target.array))[:, ::-1].astype(float)
    iso = target.grid.index_to_world(idx.mean(axis=0))
    geo = BeamGeometry(sad_mm=(2000.0, 2000.0), gantry_deg=90.0, isocenter_mm=tuple(float(v) for v in iso))
    settings = CompensatorSettings(distal_margin_percent=3.5, distal_margin_mm=1.0, smearing_radius_mm=3.0,
                                   min_thickness_mm=5.0, isocenter_to_compensator_mm=300.0)
    rc = design_compensator(ph.ct, target, geo, settings)
    rsp = hu_to_relative_stopping_power.to_volume(ph.ct)
    modulation = float(np.nanmax(rc.intended_range_mm) - np.nanmin(rc.intended_range_mm)) + 40.0
    sobp = spread_out_bragg_peak(rc.beam_range_mm, min(modulation, rc.beam_range_mm - 5.0))
    import shapely

    u, v = rc.ray_positions_mm("iso")
    hit = np.isfinite(rc.intended_range_mm)
    aperture = shapely.MultiPoint(np.column_stack([u[hit], v[hit]])).convex_hull.buffer(5.0)
    dose = pencil_beam_dose(rsp, geo.image_to_beam, geo.sad_mm, sobp, aperture=aperture,
                            compensator=rc.to_map(), pencil_spacing_mm=2.0).dose
    assert dose is not None
    k = int(np.round(idx[:, 2].mean()))
    g = ph.ct.grid
    x = g.origin_mm[0] + g.axis_coordinates_mm(0)
    y = g.origin_mm[1] + g.axis_coordinates_mm(1)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), dpi=80)
    xx, yy = rc.ray_positions_mm("device")
    im0 = axes[0].imshow(rc.thickness_mm, extent=(xx.min(), xx.max(), yy.min(), yy.max()), cmap="viridis")
    axes[0].set_title("PMMA compensator thickness (mm)")
    axes[0].set_xlabel("beam x at the device (mm)")
    axes[0].set_ylabel("beam y (mm)")
    fig.colorbar(im0, ax=axes[0], shrink=0.85)
    axes[1].imshow(ph.ct.array[k], cmap="gray", vmin=-300, vmax=300, extent=(x[0], x[-1], y[-1], y[0]))
    d = np.ma.masked_less(dose.array[k], 0.1)
    im1 = axes[1].imshow(d, cmap="jet", alpha=0.45, vmin=0, vmax=1.1, extent=(x[0], x[-1], y[-1], y[0]))
    axes[1].contour(x, y, np.asarray(target.array[k], float), levels=[0.5], colors="white", linewidths=1)
    axes[1].contour(x, y, dose.array[k], levels=[0.9], colors="red", linewidths=1)
    axes[1].set_title("TG-119: dose (relative), 90 % isodose (red), target (white)", fontsize=9)
    axes[1].set_xlabel("x (mm, patient left)")
    axes[1].set_ylabel("y (mm, posterior)")
    fig.colorbar(im1, ax=axes[1], shrink=0.85)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    out = ROOT / "docs" / "images" / "compensator_tg119.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(buf.getvalue())
    print(f"wrote {out} ({len(buf.getvalue()) // 1024} kB); {rc.to_dict()['thickness_max_mm']:.1f} mm max")


if __name__ == "__main__":
    main()
