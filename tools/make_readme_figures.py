"""Make the README figure of a simulated EPID / portal-dose pair: ``docs/images/epid_pair.png``.

Run from the repository root::

    python3 tools/make_readme_figures.py [--out docs/images/epid_pair.png]

It simulates the CIRS-like thorax rolled by 90° with the isocentre at the lesion (as the seed's test image
``CIRS_90gradi_ISOlesione_7``) with a 10 x 10 cm² field (Elekta iView geometry, 100 MU, seed 0) through the
public API and writes a small PNG (< 200 kB): the CT slice through the isocentre, the EPID image, the portal
dose and their crossplane profiles through the beam axis.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from intrepid.physics import DetectorModel, Field, simulate_transit
from intrepid.simulate import IsocenterMode, make_thorax_phantom


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images/epid_pair.png"))
    args = parser.parse_args()

    phantom = make_thorax_phantom(rotation_deg=90, isocenter=IsocenterMode.LESION, spacing_mm=2.5)
    images = simulate_transit(
        phantom.ct, Field.square(10), detector=DetectorModel.elekta_iview(), gantry_deg=0.0,
        isocenter_mm=phantom.isocenter_mm, mu=100.0, seed=0,
    )
    epid, dose = images.epid, images.portal_dose

    fig, axes = plt.subplots(1, 4, figsize=(13, 3.2), dpi=80)
    ct = phantom.ct
    k = round(float(ct.grid.world_to_index(np.asarray(phantom.isocenter_mm))[2]))
    x, y, _ = ct.grid.world_axes_mm()
    axes[0].imshow(ct.array[k], cmap="gray", vmin=-1000, vmax=1000,
                   extent=(x[0], x[-1], y[-1], y[0]))
    axes[0].plot(phantom.isocenter_mm[0], phantom.isocenter_mm[1], "r+", ms=10)
    axes[0].set_title(f"{phantom.name}\nCT slice (HU), + isocentre", fontsize=9)
    axes[0].set_xlabel("x (mm)")
    axes[0].set_ylabel("y (mm, posterior down)")

    half_c = epid.shape[1] * epid.grid.spacing_mm[0] / 2
    half_r = epid.shape[0] * epid.grid.spacing_mm[1] / 2
    ext = (-half_c, half_c, -half_r, half_r)
    im1 = axes[1].imshow(epid.array, cmap="magma", extent=ext)
    axes[1].set_title(f"EPID image ({epid.units})", fontsize=9)
    fig.colorbar(im1, ax=axes[1], fraction=0.046)
    im2 = axes[2].imshow(dose.array, cmap="viridis", extent=ext)
    axes[2].set_title("portal dose (Gy)", fontsize=9)
    fig.colorbar(im2, ax=axes[2], fraction=0.046)
    for ax in axes[1:3]:
        ax.set_xlabel("detector x (mm)")

    row = epid.shape[0] // 2
    u = (np.arange(epid.shape[1]) - (epid.shape[1] - 1) / 2) * epid.grid.spacing_mm[0]
    e = epid.array[row] / np.max(epid.array[row])
    d = dose.array[row] / np.max(dose.array[row])
    axes[3].plot(u, e, lw=1, label="EPID")
    axes[3].plot(u, d, lw=1, label="portal dose")
    axes[3].set_xlim(-150, 150)
    axes[3].set_xlabel("detector x (mm)")
    axes[3].set_title("crossplane profiles (normalised)", fontsize=9)
    axes[3].legend(fontsize=8)
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=80)
    size_kb = args.out.stat().st_size / 1024
    print(f"wrote {args.out} ({size_kb:.0f} kB)")


if __name__ == "__main__":
    main()
