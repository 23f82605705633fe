"""What the application computes for one beam of one fraction: the library calls, behind small adapters.

No physics lives here: the portal dose comes from :mod:`intrepid.transit` (the shipped network by default),
the gamma from :func:`intrepid.analysis.gamma`, the verdict from :func:`intrepid.report.judge`, the
figure from :func:`intrepid.report.comparison_figure`, the plan-based reference from
:func:`intrepid.physics.simulate_transit` (:func:`plan_reference`) and the 3D check from
:mod:`intrepid.invivo` (:func:`reconstruct_3d`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.geometry import Volume
from intrepid.report import DEFAULT_ACTION_LEVELS, ActionLevels, Verdict, judge

__all__ = [
    "BeamComparison",
    "Dose3D",
    "PortalDosePredictor",
    "compare_portal_doses",
    "default_predictor",
    "epid_volume",
    "iso_ratio",
    "plan_reference",
    "reconstruct_3d",
]

_log = logging.getLogger(__name__)

#: EPID Volume -> portal dose Volume (Gy), e.g. ``load_default_model().predict``.
PortalDosePredictor = Callable[[Volume], Volume]

#: Radius (mm at the detector) of the isocentre region averaged for the isocentre ratio.
ISO_RADIUS_MM = 5.0
#: Low-dose cut-off of the gamma analysis, % of the reference maximum (TG-218 recommends 10 %).
CUTOFF_PERCENT = 10.0
#: Largest side of the stored display maps (pixels); larger images are block-averaged.
DISPLAY_PIXELS = 256

#: The gamma kernels run on Numba's workqueue threading layer (see ``intrepid._runtime``), which aborts the
#: process when two threads enter a parallel region at once; the layer is process-wide, so is this lock.
#: Ingest workers therefore overlap file handling and figures, and take turns for gamma.
_NUMBA_LOCK = threading.Lock()


def default_predictor(kind: str = "network") -> PortalDosePredictor:
    """The portal-dose predictor of the ingest: the shipped network (``"network"``) or the kernel
    baseline (``"baseline"``), loaded once per call.

    The network is wrapped as :class:`intrepid.transit.TransitModel` (``load_transit_model``): signal per
    MU in, dose per MU out, scaled by the image's meterset (RT Image Meterset Exposure, 3002,0032), with
    the vendor conversion and the training-range checks of the 2D predictor (``intrepid predict``); an image
    it refuses is quarantined with the reason."""
    from intrepid.transit import load_default_baseline, load_transit_model

    if kind == "network":
        return load_transit_model(None).predict
    if kind == "baseline":
        return load_default_baseline().predict  # type: ignore[no-any-return]
    raise ValueError(f"predictor must be 'network' or 'baseline', got {kind!r}")


def plan_reference(study_files: list[Path], beam_number: int, epid: Volume) -> Volume | None:
    """The portal dose expected from the plan and CT for one beam, on the grid of the EPID image ``epid``.

    Each control-point segment of the beam (static beams, collimator 0) is an aperture of jaws and MLC
    (:meth:`intrepid.physics.Field.from_jaws_and_mlc`, leaf boundaries from the RTPLAN) transported through
    the planning CT to the detector by :func:`intrepid.physics.simulate_transit` with the shared beam model
    (``BeamModel.six_mv``); the noise-free portal dose of the segments, weighted by their MU, is summed. This
    is the transit model of the EPID simulator itself: on simulated data the reference and the "measurement"
    share their physics, so agreement there tests the plumbing, not the model.

    Parameters
    ----------
    study_files : list of Path
        The RTPLAN first, then the CT series (further files are ignored).
    beam_number : int
        Beam Number (300A,00C0) in the RTPLAN.
    epid : Volume
        An EPID image of the beam (its grid, SID and gantry angle are used).

    Returns
    -------
    Volume or None
        Portal dose (Gy) on ``epid``'s grid; None when the plan or CT is missing, the beam is an arc or has a
        rotated collimator, or the image geometry is not known (no SID). The ingest then uses the uploaded or
        first-fraction reference.
    """
    import pydicom

    from intrepid.dicom import read_ct_series, read_rtplan
    from intrepid.geometry import Quantity
    from intrepid.physics import DetectorModel, Field, simulate_transit

    if not study_files:
        return None
    plan = read_rtplan(study_files[0])
    beam = next((b for b in plan.beams if b.number == beam_number), None)
    meta = dict(epid.metadata or {})
    sid = meta.get("sid_mm")
    if beam is None or plan.is_ion or sid is None or not beam.meterset:
        return None
    cps = beam.control_points
    if (
        len({round(cp.gantry_deg, 3) for cp in cps}) > 1
        or abs(((beam.collimator_deg + 180) % 360) - 180) > 1e-6
    ):
        return None  # arcs and rotated collimators: not modelled here (see docs/app.md)
    ct_files = [
        f
        for f in study_files[1:]
        if str(pydicom.dcmread(f, stop_before_pixels=True).Modality).upper() == "CT"
    ]
    if not ct_files:
        return None
    ct = read_ct_series(ct_files)
    mlc = next((d for d in beam.devices if d.device_type.is_mlc), None)
    boundaries = None if mlc is None or mlc.leaf_boundaries_mm is None else list(mlc.leaf_boundaries_mm)
    rows, cols = epid.shape[-2], epid.shape[-1]
    detector = DetectorModel.elekta_iview(
        rows=rows, columns=cols, pixel_mm=float(epid.grid.spacing_mm[0]), sid_mm=float(sid)
    )
    w = np.array([cp.cumulative_meterset_weight for cp in cps], dtype=float)
    total: NDArray[np.float64] | None = None
    for k in range(1, len(cps)):
        share = (w[k] - w[k - 1]) / (w[-1] - w[0])
        if share <= 0:
            continue
        cp0, cp1 = cps[k - 1], cps[k]
        jx, jy = cp1.jaw_x_mm or (-200.0, 200.0), cp1.jaw_y_mm or (-200.0, 200.0)
        leaves = None
        if cp1.mlc_mm is not None:
            leaves = np.asarray(cp1.mlc_mm) if cp0.mlc_mm is None else 0.5 * (cp0.mlc_mm + cp1.mlc_mm)
        fld = Field.from_jaws_and_mlc(
            jx[0],
            jx[1],
            jy[0],
            jy[1],
            boundaries if leaves is not None else None,
            None if leaves is None else leaves.reshape(-1),
        )
        with _NUMBA_LOCK:
            img = simulate_transit(
                ct,
                fld,
                gantry_deg=cp1.gantry_deg,
                isocenter_mm=cp1.isocenter_mm,
                mu=float(beam.meterset) * share,
                detector=detector,
                seed=0,
            )
        d = np.asarray(img.portal_dose.array, dtype=np.float64)
        total = d if total is None else total + d
    if total is None or total.shape != epid.shape:
        return None
    return epid.with_array(total, quantity=Quantity.PORTAL_DOSE, units="Gy")


def epid_volume(rt: Any) -> Volume:
    """The EPID image of an RT Image with the geometry the per-MU 2D predictor needs in its metadata
    (``meterset`` from Meterset Exposure 3002,0032 and ``sid_mm``), as ``intrepid predict`` passes it."""
    meta = dict(rt.image.metadata or {})
    meta["meterset"] = rt.meterset
    meta["sid_mm"] = rt.sid_mm
    img = rt.image
    return Volume(np.asarray(img.array), img.grid, img.quantity, img.units, img.frame_of_reference_uid, meta)


@dataclass(frozen=True, eq=False)
class Dose3D:
    """The in-vivo 3D check of one fraction: the CT, the planned and reconstructed dose (Gy, CT grid), the
    comparison (3D gamma, DVH differences, isocentre ratio) and the verdict (in-vivo action levels)."""

    ct: Volume
    planned: Volume
    reconstructed: Volume
    comparison: Any  # intrepid.invivo.Comparison
    verdict: str
    reasons: list[str]
    method: str
    seconds: float
    notes: list[str] = field(default_factory=list)


def reconstruct_3d(
    study_files: list[Path], image_files: list[Path], predictor: PortalDosePredictor
) -> Dose3D | None:
    """The in-vivo 3D dose of a fraction reconstructed from its transit images in the patient's CT.

    Calls :mod:`intrepid.invivo` (its STUDY_DIR reader, the physics baseline reconstruction, the comparison
    with the planned RTDOSE and the verdict), with the portal doses predicted by the application's
    ``predictor`` (the same as the 2D comparison).

    Parameters
    ----------
    study_files : list of Path
        The CT slices, the RTPLAN, the RTSTRUCT (optional) and the planned RTDOSE of the plan.
    image_files : list of Path
        The fraction's EPID RT Images (at least one per beam of the plan).
    predictor : callable
        EPID Volume -> portal dose Volume (Gy).

    Returns
    -------
    Dose3D or None
        None when ``study_files`` hold no CT, RTPLAN or planned RTDOSE (nothing to reconstruct in).

    Raises
    ------
    IntrepidError
        An unreadable or inconsistent study (one line naming the file).
    """
    import os
    import tempfile
    import types

    from intrepid.invivo import (
        ActionLevels,
        Method,
        compare_doses,
        load_baseline,
        load_study,
        portal_images,
        reconstruct,
        verdict,
    )

    t0 = time.perf_counter()
    if not study_files or not image_files:
        return None
    with tempfile.TemporaryDirectory(prefix="intrepid-3d-") as tmp:
        for i, f in enumerate([*study_files, *image_files]):
            os.symlink(Path(f).resolve(), Path(tmp) / f"{i:05d}.dcm")
        study = load_study(tmp)
        by_image = {id(im.image): im for im in study.images}

        def predict(image: Volume) -> Volume:  # the RT Image's meterset and SID travel with the signal
            rt = by_image.get(id(image))
            return predictor(image if rt is None else epid_volume(rt))

        with _NUMBA_LOCK:  # the ray tracer and the 3D gamma are Numba kernels too
            images = portal_images(study, predictor=types.SimpleNamespace(predict=predict))
            rec = reconstruct(images, study.ct, method=Method.BASELINE, baseline=load_baseline())
            cmp = compare_doses(
                study.planned_dose,
                rec.total,
                structures=study.structures,
                roi_types=study.roi_types,
                isocenter_mm=study.plan.beams[0].isocenter_mm,
                with_dvh_curves=True,
            )
    v, reasons = verdict(cmp, ActionLevels())
    return Dose3D(
        study.ct,
        study.planned_dose,
        rec.total,
        cmp,
        v,
        list(reasons),
        rec.method.value,
        time.perf_counter() - t0,
        list(study.notes),
    )


def _block(a: NDArray[Any], factor: int, reduce: str = "mean") -> NDArray[np.float32]:
    if factor <= 1:
        return np.asarray(a, dtype=np.float32)
    r, c = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    b = np.asarray(a[:r, :c], dtype=np.float64).reshape(r // factor, factor, c // factor, factor)
    if reduce == "max":
        with np.errstate(all="ignore"):
            m = np.where(np.isnan(b), -np.inf, b).max(axis=(1, 3))
        return np.asarray(np.where(np.isinf(m), np.nan, m), dtype=np.float32)
    return np.asarray(b.mean(axis=(1, 3)), dtype=np.float32)


def iso_ratio(
    evaluated: NDArray[Any], reference: NDArray[Any], spacing_mm: tuple[float, float]
) -> float | None:
    """Evaluated / reference dose averaged within :data:`ISO_RADIUS_MM` of the image centre (beam axis).

    None when the reference there is below 5 % of its maximum (the isocentre is blocked or outside the
    field), as the SOFTDISO ratio is then meaningless.
    """
    ref = np.asarray(reference, dtype=float)
    ev = np.asarray(evaluated, dtype=float)
    rows = (np.arange(ref.shape[0]) - (ref.shape[0] - 1) / 2) * spacing_mm[0]
    cols = (np.arange(ref.shape[1]) - (ref.shape[1] - 1) / 2) * spacing_mm[1]
    radius = max(ISO_RADIUS_MM, *spacing_mm)
    near = rows[:, None] ** 2 + cols[None, :] ** 2 <= radius**2
    r = float(ref[near].mean())
    if not r > 0.05 * float(np.nanmax(ref)):
        return None
    return float(ev[near].mean()) / r


@dataclass(frozen=True, eq=False)
class BeamComparison:
    """One beam of one fraction against its reference.

    ``verdict`` is None when there was nothing to compare with (this fraction is the first-fraction
    baseline); the metric fields are then NaN.
    """

    pass_rate_percent: float
    mean_gamma: float
    gamma_1percent: float
    iso_ratio: float | None
    max_dose_gy: float
    verdict: Verdict | None
    figure_png: bytes
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def compare_portal_doses(
    epid: Volume,
    measured: Volume,
    reference: Volume | None,
    *,
    levels: ActionLevels = DEFAULT_ACTION_LEVELS,
    reference_label: str = "reference",
    title: str = "",
    render: Callable[..., bytes] | None = None,
) -> BeamComparison:
    """Gamma, isocentre ratio and verdict of a fraction's portal dose against the reference, with the figure.

    Parameters
    ----------
    epid : Volume
        The EPID image (for display).
    measured : Volume
        The portal dose predicted from this fraction's EPID image (Gy).
    reference : Volume or None
        The reference portal dose (Gy) on the same grid; None for the baseline fraction itself.
    levels : ActionLevels
        Gamma criterion and action levels.
    reference_label, title : str
        Labels of the figure.
    render : callable, optional
        Called with the keyword arguments of :func:`intrepid.report.comparison_figure` to draw the figure
        (default: that function, in this thread; the application hands it to a worker process).
    """
    from intrepid.analysis import gamma
    from intrepid.report import comparison_figure

    draw = render or comparison_figure
    t = time.perf_counter()
    meas = np.asarray(measured.array, dtype=np.float64)
    factor = max(1, math.ceil(max(meas.shape) / DISPLAY_PIXELS))
    sp = (float(measured.grid.spacing_mm[1]) * factor, float(measured.grid.spacing_mm[0]) * factor)
    settings: dict[str, Any] = {
        "gamma": f"global {levels.criterion_label}, cut-off {CUTOFF_PERCENT:g} % of the reference maximum",
        "distances": "mm at the detector plane",
        "isocentre ratio": f"mean within {ISO_RADIUS_MM:g} mm of the beam axis",
        "action levels": "; ".join(levels.describe()) + f" ({levels.source})",
    }
    if reference is None:
        png = draw(
            epid=_block(np.asarray(epid.array), factor),
            reference=_block(meas, factor),
            evaluated={"this fraction": _block(meas, factor)},
            gamma={},
            spacing_mm=sp,
            reference_label="this fraction (baseline)",
            gamma_label=levels.criterion_label,
            title=title,
        )
        nan = float("nan")
        return BeamComparison(
            nan, nan, nan, None, float(meas.max()), None, png, settings, time.perf_counter() - t
        )
    if reference.shape != measured.shape:
        raise ValueError(
            f"reference shape {reference.shape} differs from the measured shape {measured.shape}"
        )
    ref = np.asarray(reference.array, dtype=np.float64)
    evaluated = measured.with_array(meas, frame_of_reference_uid=reference.frame_of_reference_uid)
    with _NUMBA_LOCK:
        res = gamma(
            reference,
            evaluated,
            dd_percent=levels.gamma_dd_percent,
            dta_mm=levels.gamma_dta_mm,
            cutoff_percent=CUTOFF_PERCENT,
        )
    full_sp = (float(measured.grid.spacing_mm[1]), float(measured.grid.spacing_mm[0]))
    ratio = iso_ratio(meas, ref, full_sp)
    verdict = judge(float(res.pass_rate_percent), float(res.mean_gamma), ratio, levels)
    png = draw(
        epid=_block(np.asarray(epid.array), factor),
        reference=_block(ref, factor),
        evaluated={"this fraction": _block(meas, factor)},
        gamma={"this fraction": _block(np.asarray(res.gamma_map.array), factor, "max")},
        spacing_mm=sp,
        reference_label=reference_label,
        gamma_label=levels.criterion_label,
        title=title,
    )
    return BeamComparison(
        float(res.pass_rate_percent),
        float(res.mean_gamma),
        float(res.gamma_1percent),
        ratio,
        float(meas.max()),
        verdict,
        png,
        settings,
        time.perf_counter() - t,
    )
