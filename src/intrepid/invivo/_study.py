"""Reading a STUDY_DIR for in-vivo reconstruction: CT series, RTPLAN, RTSTRUCT, planned RTDOSE, RT Images.

Files are classified by their Modality (0008,0060), whatever their names and sub-folders. Rules:

- **CT**: one series (the folder of the CT files; several series: the one with most slices).
- **RTPLAN**: exactly one.
- **RTSTRUCT**: optional (no DVH without it).
- **RTDOSE**: the planned dose. Dose Summation Type PLAN (or FRACTION) is the plan sum; BEAM doses are matched
  to beams by Referenced Beam Number and summed when no plan sum is present. Files whose name starts with
  ``delivered`` (the simulator's ground truth) and everything under the output folder are ignored.
- **RTIMAGE**: transit images. Portal-dose images (Rescale Type / units Gy) are used as they are; EPID
  images are turned into portal dose by the InTrEPID-2D model (:func:`intrepid.transit.load_predictor`).
  Where a beam has both, the portal-dose images win. Images are matched to beams by Referenced Beam Number,
  else by the nearest gantry angle (within 1°); an arc beam may have several (one per sector).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from numpy.typing import NDArray

from intrepid.dicom import (
    RTImage,
    RTPlan,
    StructureSet,
    read_ct_series,
    read_rtdose,
    read_rtimage,
    read_rtplan,
    read_rtstruct,
    roi_mask,
)
from intrepid.errors import DicomError, ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.invivo._fod import PortalImage

__all__ = ["Study", "load_study", "portal_images"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class Study:
    """The inputs of one in-vivo reconstruction.

    Attributes
    ----------
    ct : Volume
    plan : RTPlan
    planned_dose : Volume
        Plan sum (Gy), resampled onto the CT grid.
    planned_beam_doses : dict of int to Volume
        Per beam when given (Gy, CT grid).
    structures : dict of str to bool mask (CT grid)
    roi_types : dict of str to str
    images : tuple of RTImage
    folder : Path
    """

    ct: Volume
    plan: RTPlan
    planned_dose: Volume
    planned_beam_doses: dict[int, Volume]
    structures: dict[str, NDArray[np.bool_]]
    roi_types: dict[str, str]
    images: tuple[RTImage, ...]
    folder: Path
    notes: list[str] = field(default_factory=list)


def _classify(folder: Path, exclude: Sequence[Path]) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    ex = [e.resolve() for e in exclude]
    for path in sorted(folder.rglob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        rp = path.resolve()
        if any(rp == e or e in rp.parents for e in ex):
            continue
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            modality = str(getattr(ds, "Modality", "")).upper()
        except Exception:  # not DICOM: ignored (case.json, report files)
            continue
        if modality:
            found.setdefault(modality, []).append(path)
    return found


def _onto(volume: Volume, ct: Volume) -> Volume:
    if volume.grid.is_close(ct.grid):
        return volume.with_array(np.asarray(volume.array, dtype=np.float32))
    from intrepid.geometry import resample

    return resample(volume, ct.grid)  # type: ignore[no-any-return]


def load_study(folder: str | os.PathLike[str], *, exclude: Sequence[str | os.PathLike[str]] = ()) -> Study:
    """Read a STUDY_DIR (see the module docstring).

    Raises
    ------
    ParameterError
        A missing folder, no CT / RTPLAN / planned RTDOSE / RT Image, or two RTPLANs; the message names the
        folder and what is missing.
    """
    root = Path(folder)
    if not root.is_dir():
        raise ParameterError(f"{root}: STUDY_DIR is not a folder")
    files = _classify(root, [Path(e) for e in exclude])
    notes: list[str] = []
    cts = files.get("CT", [])
    if not cts:
        raise ParameterError(f"{root}: no CT images in the study folder")
    by_folder: dict[Path, list[Path]] = {}
    for p in cts:
        by_folder.setdefault(p.parent, []).append(p)
    ct_files = max(by_folder.values(), key=len)
    ct = read_ct_series(ct_files)
    plans = files.get("RTPLAN", [])
    if len(plans) != 1:
        raise ParameterError(f"{root}: expected exactly one RTPLAN, found {len(plans)}")
    plan = read_rtplan(plans[0])
    if plan.is_ion:
        raise ParameterError(f"{plans[0]}: an ion plan; in-vivo EPID dosimetry needs a photon plan")
    structures: dict[str, NDArray[np.bool_]] = {}
    roi_types: dict[str, str] = {}
    rs = files.get("RTSTRUCT", [])
    if rs:
        ss: StructureSet = read_rtstruct(rs[0])
        for roi in ss.rois:
            if not roi.contours:
                continue
            try:
                m = roi_mask(roi, ct.grid)
            except Exception as exc:  # one bad ROI must not stop the check
                notes.append(f"ROI {roi.name!r} skipped: {exc}")
                continue
            structures[roi.name] = np.asarray(m.array, dtype=bool)
            roi_types[roi.name] = (roi.roi_type or "ORGAN").upper()
    else:
        notes.append("no RTSTRUCT: no DVH comparison")
    plan_sum: Volume | None = None
    beam_doses: dict[int, Volume] = {}
    for p in files.get("RTDOSE", []):
        if p.name.lower().startswith("delivered"):
            continue
        d = read_rtdose(p)
        v = _onto(d.volume, ct)
        if d.summation_type.upper() in ("BEAM", "BEAM_SESSION") and len(d.referenced_beam_numbers) == 1:
            beam_doses[d.referenced_beam_numbers[0]] = v
        elif plan_sum is None:
            plan_sum = v
        else:
            notes.append(f"{p.name}: a second plan dose, ignored")
    if plan_sum is None:
        if not beam_doses:
            raise ParameterError(f"{root}: no planned RTDOSE (PLAN or BEAM summation) in the study folder")
        plan_sum = ct.with_array(
            np.sum([np.asarray(v.array, dtype=np.float64) for v in beam_doses.values()], axis=0).astype(
                np.float32
            ),
            quantity=Quantity.DOSE,
            units="Gy",
        )
    images = tuple(read_rtimage(p) for p in files.get("RTIMAGE", []))
    if not images:
        raise ParameterError(f"{root}: no transit RT Images in the study folder")
    return Study(ct, plan, plan_sum, beam_doses, structures, roi_types, images, root, notes)


def _beam_for(image: RTImage, plan: RTPlan) -> int:
    if image.referenced_beam_number is not None and any(
        b.number == image.referenced_beam_number for b in plan.beams
    ):
        return int(image.referenced_beam_number)
    if image.gantry_deg is None:
        raise ParameterError(f"{image.source}: no Referenced Beam Number and no Gantry Angle to match a beam")
    best, best_d = None, 1e9
    for b in plan.beams:
        for cp in b.control_points:
            d = abs(((cp.gantry_deg - image.gantry_deg + 180.0) % 360.0) - 180.0)
            if d < best_d:
                best, best_d = b.number, d
    if best is None or best_d > 1.0:
        raise ParameterError(f"{image.source}: gantry {image.gantry_deg:g} matches no beam of the plan (±1°)")
    return int(best)


def portal_images(study: Study, *, predictor: Any = None) -> list[PortalImage]:
    """Portal-dose images with geometry, one per RT Image (portal dose preferred over EPID per beam).

    Parameters
    ----------
    predictor : optional
        InTrEPID-2D ensemble for EPID images (loaded on demand: the shipped default model).
    """
    dose_imgs: dict[int, list[RTImage]] = {}
    epid_imgs: dict[int, list[RTImage]] = {}
    for im in study.images:
        n = _beam_for(im, study.plan)
        target = dose_imgs if im.image.quantity is Quantity.PORTAL_DOSE else epid_imgs
        target.setdefault(n, []).append(im)
    out: list[PortalImage] = []
    for b in study.plan.beams:
        ims = dose_imgs.get(b.number) or epid_imgs.get(b.number) or []
        if not ims:
            raise ParameterError(f"{study.folder}: no transit image for beam {b.number} {b.name!r}")
        for im in ims:
            arr = np.asarray(im.image.array, dtype=np.float64)
            if im.image.quantity is not Quantity.PORTAL_DOSE:
                if predictor is None:
                    from intrepid.transit import load_predictor

                    predictor = load_predictor(None)
                pd = predictor.predict(im.image)
                arr = np.asarray(getattr(pd, "array", pd), dtype=np.float64)
            gantry = im.gantry_deg if im.gantry_deg is not None else b.gantry_deg
            iso = b.isocenter_mm
            if im.sid_mm is None or not np.isfinite(im.sid_mm):
                raise DicomError(f"{im.source}: RT Image SID (3002,0026) is missing")
            out.append(
                PortalImage(
                    arr,
                    (float(im.pixel_spacing_mm[0]), float(im.pixel_spacing_mm[1])),
                    float(gantry),
                    float(im.sid_mm),
                    float(im.sad_mm or b.sad_mm[0]),
                    iso,
                    b.number,
                )
            )
    return out
