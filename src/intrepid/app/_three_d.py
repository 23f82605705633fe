"""The 3D view of a fraction: which stored files go into the in-vivo reconstruction, and what is kept of it.

:func:`study_files_for` picks, among the files ingested for a patient, the RTPLAN of the fraction's plan, the
CT series in its Frame of Reference, the RTSTRUCT and the planned RTDOSE (the simulator's ``delivered*`` truth
is never used). :func:`write_volumes` writes what the browser shows: the CT, the planned and reconstructed
dose and the 3D gamma as NIfTI (``intrepid.dicom.write_nifti``), isodose shells of both doses as label
volumes, the DVH comparison figure and a small JSON of display settings. The viewer (vendored NiiVue, see
``static/vendor/niivue/LICENSE``) loads them from ``/volumes/<fraction id>/<name>``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.app._pipeline import Dose3D

__all__ = [
    "ISODOSE_PERCENT",
    "VOLUME_FILES",
    "dvh_figure",
    "isodose_shells",
    "study_files_for",
    "write_volumes",
]

_log = logging.getLogger(__name__)

#: Isodose levels drawn, % of the prescription (the PTV D50 of the plan, as in :mod:`intrepid.invivo`).
ISODOSE_PERCENT = (50.0, 80.0, 95.0, 107.0)
#: The files of a 3D result folder that the viewer may load.
VOLUME_FILES = (
    "ct.nii.gz",
    "planned.nii.gz",
    "reconstructed.nii.gz",
    "gamma.nii.gz",
    "isodose_planned.nii.gz",
    "isodose_reconstructed.nii.gz",
    "dvh.png",
    "view.json",
)


def study_files_for(
    candidates: list[tuple[str, Path, str]], plan_uid: str, *, need_dose: bool = True
) -> list[Path] | None:
    """The files of the plan ``plan_uid`` among a patient's kept files, or None when incomplete.

    Parameters
    ----------
    candidates : list of (kind, path, original name)
        ``kind`` is the modality (CT, RTPLAN, RTSTRUCT, RTDOSE).
    plan_uid : str
        SOP Instance UID of the fraction's RT Plan.

    Returns
    -------
    list of Path or None
        RTPLAN, CT series, RTSTRUCT (if any), planned RTDOSE; None without the RTPLAN, a CT in its Frame of
        Reference, or (when ``need_dose``) a planned RTDOSE.
    """
    import pydicom

    def header(p: Path) -> Any:
        return pydicom.dcmread(p, stop_before_pixels=True, force=True)

    plan = next(
        (p for kind, p, _ in candidates if kind == "RTPLAN" and header(p).SOPInstanceUID == plan_uid), None
    )
    if plan is None:
        return None
    frame = str(header(plan).get("FrameOfReferenceUID", ""))
    series: dict[str, list[Path]] = {}
    structs: list[Path] = []
    doses: list[Path] = []
    for kind, p, name in candidates:
        if kind == "CT":
            ds = header(p)
            if not frame or str(ds.get("FrameOfReferenceUID", "")) == frame:
                series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(p)
        elif kind == "RTSTRUCT":
            structs.append(p)
        elif kind == "RTDOSE" and not name.lower().startswith("delivered"):
            refs = [
                str(getattr(item, "ReferencedSOPInstanceUID", ""))
                for item in header(p).get("ReferencedRTPlanSequence", [])
            ]
            if not refs or plan_uid in refs:
                doses.append(p)
    if not series or (need_dose and not doses):
        return None
    ct = max(series.values(), key=len)
    return [plan, *ct, *structs[-1:], *doses]


def isodose_shells(dose_gy: NDArray[Any], prescription_gy: float) -> NDArray[np.float32]:
    """Label volume of the isodose surfaces: voxels on the boundary of each level of :data:`ISODOSE_PERCENT`
    carry the level (%), the rest 0; cut by a slice plane, the shells draw isodose lines."""
    from scipy.ndimage import binary_erosion

    out = np.zeros(np.shape(dose_gy), dtype=np.float32)
    d = np.asarray(dose_gy, dtype=np.float64)
    for level in ISODOSE_PERCENT:
        inside = d >= level / 100.0 * prescription_gy
        shell = inside & ~binary_erosion(inside)
        out[shell] = level
    return out


def dvh_figure(comparison: Any) -> bytes:
    """Cumulative DVH per ROI, planned (dashed) and reconstructed (solid), as PNG bytes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    ax = fig.add_subplot()
    colours = matplotlib.colormaps["tab10"]
    for i, (name, planned) in enumerate(sorted(comparison.dvh_planned.items())):
        rec = comparison.dvh_reconstructed.get(name)
        c = colours(i % 10)
        for dvh, style, label in ((planned, "--", f"{name} planned"), (rec, "-", f"{name} reconstructed")):
            if dvh is None or not dvh.volume_cc > 0:
                continue
            ax.plot(
                dvh.dose_bin_edges_gy,
                100.0 * np.asarray(dvh.cumulative_cc) / dvh.volume_cc,
                style,
                color=c,
                lw=1.4,
                label=label,
            )
    ax.set_xlabel("dose (Gy)")
    ax.set_ylabel("volume (%)")
    ax.set_ylim(0, 102)
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    ax.set_title("DVH: planned (dashed) vs reconstructed (solid)", fontsize=10)
    if ax.lines:
        ax.legend(fontsize=7, ncol=2, loc="lower left")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def write_volumes(result: Dose3D, folder: Path) -> Path:
    """Write the viewer's files (:data:`VOLUME_FILES`) of ``result`` into ``folder``, replacing it whole."""
    from intrepid.dicom import write_nifti

    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{os.getpid()}-{folder.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    presc = float(result.comparison.prescription_gy)
    ct = result.ct.with_array(np.clip(np.asarray(result.ct.array), -1024, 3071).astype(np.int16))
    write_nifti(ct, tmp / "ct.nii.gz")
    for name, vol in (("planned", result.planned), ("reconstructed", result.reconstructed)):
        arr = np.asarray(vol.array, dtype=np.float32)
        write_nifti(vol.with_array(arr), tmp / f"{name}.nii.gz")
        write_nifti(vol.with_array(isodose_shells(arr, presc)), tmp / f"isodose_{name}.nii.gz")
    g = np.nan_to_num(np.asarray(result.comparison.gamma_map.array, dtype=np.float32), nan=0.0)
    write_nifti(result.comparison.gamma_map.with_array(g), tmp / "gamma.nii.gz")
    (tmp / "dvh.png").write_bytes(dvh_figure(result.comparison))
    view = {
        "prescription_gy": presc,
        "dose_max_gy": float(np.max(np.asarray(result.planned.array))),
        "isodose_percent": list(ISODOSE_PERCENT),
    }
    (tmp / "view.json").write_text(json.dumps(view))
    old = folder.with_name(f".old-{os.getpid()}-{folder.name}")
    if folder.exists():
        os.replace(folder, old)
    os.replace(tmp, folder)
    shutil.rmtree(old, ignore_errors=True)
    return folder
