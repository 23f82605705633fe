"""Run inside pyRadPlan's environment (not collected by pytest): SVDPB dose of a square field in a water cube.

Usage: ``python pyradplan_worker.py N SPACING_MM FIELD_MM`` prints JSON: the dose cube's central column along
y (the beam direction at gantry 0), the x profile through the isocentre depth + 100 mm, and the seconds.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import numpy as np


def main() -> None:
    import SimpleITK as sitk
    from pyRadPlan import PhotonPlan, calc_dose_influence, generate_stf
    from pyRadPlan.cst import create_cst, create_voi
    from pyRadPlan.ct import create_ct

    logging.disable(logging.CRITICAL)
    n, h, field = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
    hu = np.zeros((n, n, n), dtype=np.float32)
    img = sitk.GetImageFromArray(hu)
    img.SetSpacing((h, h, h))
    img.SetOrigin((-(n - 1) / 2 * h,) * 3)
    ct = create_ct(cube_hu=img)
    c = n // 2
    half = round(field / 2 / h)
    target = np.zeros(hu.shape, dtype=np.uint8)
    target[c - half : c + half, :, c - half : c + half] = 1
    vois = []
    for name, kind, mask in (("target", "TARGET", target), ("body", "OAR", np.ones_like(target))):
        m = sitk.GetImageFromArray(mask)
        m.CopyInformation(img)
        vois.append(create_voi(name=name, voi_type=kind, mask=m, ct_image=ct))
    cst = create_cst(vois=vois, ct=ct)
    pln = PhotonPlan(machine="Generic")
    pln.prop_stf = {"gantry_angles": [0.0], "couch_angles": [0.0], "bixel_width": 5.0}
    t = time.perf_counter()
    stf = generate_stf(ct, cst, pln)
    dij = calc_dose_influence(ct, cst, stf, pln)
    res = dij.compute_result_ct_grid(np.ones(dij.total_num_of_bixels))
    seconds = time.perf_counter() - t
    phys = res["physical_dose"]
    dose = phys if isinstance(phys, np.ndarray) else sitk.GetArrayFromImage(phys)
    print(json.dumps({"axis": dose[c, :, c].tolist(), "seconds": seconds,  # noqa: T201 (worker output)  # noqa: T201 (the worker answers on stdout)
                      "iso": [float(v) for v in stf.beams[0].iso_center]}))  # fmt: skip


if __name__ == "__main__":
    main()
