"""3D in-vivo cases: patient + plan + planned and delivered doses + transit EPID images, as one DICOM study.

:func:`make_invivo_case` builds a case in memory:

1. a patient-like phantom (:func:`intrepid.simulate.make_patient_case_phantom`) and a plan
   (:func:`intrepid.simulate.make_plan`) whose monitor units are calibrated with the dose engine
   (:func:`intrepid.dose.compute_dose`) so that the PTV median dose D50 equals the prescription;
2. the planned dose per beam and in total (dose engine, planned geometry);
3. the delivery errors (:mod:`intrepid.simulate._invivo_errors`) applied to the plan (MU, MLC, angles,
   set-up) and to the patient (rotation, anatomy), and the *delivered* dose (dose engine on the delivered
   geometry, reported on the planning CT grid);
4. one transit image per beam (per arc sector for VMAT: a cine-mode frame of each control-point interval)
   by the EPID simulator :func:`intrepid.physics.simulate_transit` through the delivered geometry: each
   step-and-shoot segment is simulated as its MLC aperture with its share of the MU and the segments are
   summed.

:func:`write_invivo_case` writes the STUDY_DIR: ``CT/`` (one file per slice), ``RTSTRUCT.dcm``,
``RTPLAN.dcm``, ``RTDOSE_plan.dcm`` (summation PLAN), ``RTDOSE_beam_<n>.dcm`` (summation BEAM),
``delivered_dose.dcm``, ``transit/beam_<n>[_<k>].dcm`` (EPID RT Images with Referenced Beam Number),
``portal_dose/beam_<n>[_<k>].dcm`` (the simulator's noise-free portal dose of the same frames: what a perfect
InTrEPID-2D step would give) and ``case.json``, all in one Frame of Reference and one study. Everything is
deterministic for a seed.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom import RTPlan
from intrepid.errors import ParameterError
from intrepid.geometry import Quantity, Volume
from intrepid.simulate._invivo_errors import (
    DeliveryError,
    ErrorKind,
    apply_patient_errors,
    apply_plan_errors,
    parse_error_spec,
)
from intrepid.simulate._invivo_plans import PlanKind, make_plan, scale_plan_mu
from intrepid.simulate._patients import PatientPhantom, PatientSite, make_patient_case_phantom

__all__ = [
    "InvivoCase",
    "InvivoCaseSpec",
    "TransitFrame",
    "make_invivo_case",
    "plan_doses",
    "write_invivo_case",
]

_log = logging.getLogger(__name__)

#: Dose per fraction prescribed to the PTV median (D50), Gy.
PRESCRIPTION_GY = 2.0
#: Schema of case.json.
CASE_SCHEMA = "intrepid-invivo-case-1"


@dataclass(frozen=True)
class InvivoCaseSpec:
    """What to simulate.

    Parameters
    ----------
    site : PatientSite or str
    plan : PlanKind or str
    errors : tuple of str
        Delivery-error SPEC strings (may be empty).
    seed : int
        Seeds the EPID noise and any random draw of the errors.
    spacing_mm : float
        CT and dose grid spacing (4 mm default: affordable on a CPU).
    prescription_gy : float
        PTV D50 per fraction, Gy.
    anatomy_seed : int or None
        None: the site's reference anatomy; an integer: another patient of the site
        (:func:`intrepid.simulate.vary_anatomy`), the same for every fraction with this value.
    """

    site: PatientSite | str = PatientSite.THORAX
    plan: PlanKind | str = PlanKind.BOX4
    errors: tuple[str, ...] = ()
    seed: int = 0
    spacing_mm: float = 4.0
    prescription_gy: float = PRESCRIPTION_GY
    anatomy_seed: int | None = None


@dataclass(frozen=True, eq=False)
class TransitFrame:
    """The transit EPID image of one beam (or one arc sector) with its noise-free portal dose.

    Parameters
    ----------
    beam_number : int
    gantry_deg : float
        Delivered gantry angle (mean over the sector for arcs), degrees.
    planned_gantry_deg : float
        The plan's gantry angle of the same beam / sector.
    epid : Volume
        Calibrated EPID signal (CU), detector grid.
    portal_dose : Volume
        Dose to water at the EPID plane (Gy), noise-free, same grid.
    mu : float
        Meterset of the frame.
    sid_mm, sad_mm : float
    """

    beam_number: int
    gantry_deg: float
    planned_gantry_deg: float
    epid: Volume
    portal_dose: Volume
    mu: float
    sid_mm: float
    sad_mm: float


@dataclass(frozen=True, eq=False)
class InvivoCase:
    """A simulated fraction (see the module docstring)."""

    spec: InvivoCaseSpec
    phantom: PatientPhantom
    delivered_phantom: PatientPhantom
    plan: RTPlan
    delivered_plan: RTPlan
    errors: tuple[DeliveryError, ...]
    planned_beam_doses: dict[int, Volume]
    planned_dose: Volume
    delivered_beam_doses: dict[int, Volume]
    delivered_dose: Volume
    transit: tuple[TransitFrame, ...]
    timings_s: dict[str, float] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """The content of ``case.json``."""
        ptv = self.phantom.structures["PTV"]
        d50_plan = float(np.median(self.planned_dose.array[ptv]))
        d50_del = float(np.median(self.delivered_dose.array[ptv]))
        return {
            "schema": CASE_SCHEMA,
            "site": self.phantom.site.value,
            "plan": PlanKind(self.spec.plan).value
            if not isinstance(self.spec.plan, PlanKind)
            else self.spec.plan.value,
            "seed": self.spec.seed,
            "anatomy_seed": self.spec.anatomy_seed,
            "spacing_mm": self.spec.spacing_mm,
            "prescription_gy": self.spec.prescription_gy,
            "errors": [e.to_dict() for e in self.errors],
            "error_free": not self.errors,
            "isocenter_mm": list(self.phantom.isocenter_mm),
            "beams": [
                {
                    "number": b.number,
                    "name": b.name,
                    "gantry_deg": b.gantry_deg,
                    "planned_mu": float(b.meterset or 0.0),
                    "delivered_mu": float(
                        next(d.meterset for d in self.delivered_plan.beams if d.number == b.number) or 0.0
                    )
                    if any(d.number == b.number for d in self.delivered_plan.beams)
                    else None,
                }
                for b in self.plan.beams
            ],
            "ptv_d50_planned_gy": d50_plan,
            "ptv_d50_delivered_gy": d50_del,
            "ptv_d50_delivered_over_planned": d50_del / d50_plan if d50_plan > 0 else None,
            "frame_of_reference_uid": self.phantom.ct.frame_of_reference_uid,
            "timings_s": self.timings_s,
        }


# ------------------------------------------------------------------------------------------- dose engine
def plan_doses(ct: Volume, plan: RTPlan) -> tuple[dict[int, Volume], Volume]:
    """Per-beam and total dose (Gy) of ``plan`` on ``ct.grid`` by :func:`intrepid.dose.compute_dose`."""
    try:
        from intrepid.dose import compute_dose
    except ImportError:  # the package may not re-export it yet
        from intrepid.dose._engine import compute_dose

    result = compute_dose(ct, plan, grid=ct.grid)
    per_beam = {int(b.number): b.dose for b in result.beams}
    return per_beam, result.total


# ------------------------------------------------------------------------------------------- EPID frames
def _segment_fields(beam: Any) -> list[tuple[list[int], float, float]]:
    """Groups of segments to image: (segment end indices, meterset fraction, mean gantry angle)."""
    cps = beam.control_points
    w = np.array([cp.cumulative_meterset_weight for cp in cps], dtype=float)
    frac = np.diff(w) / (w[-1] - w[0])
    gantries = [cp.gantry_deg for cp in cps]
    arc = len({round(g, 3) for g in gantries}) > 1
    if not arc:
        return [([k for k in range(1, len(cps)) if frac[k - 1] > 0], 1.0, gantries[0])]
    groups = []
    for k in range(1, len(cps)):
        if frac[k - 1] <= 0:
            continue
        g0, g1 = gantries[k - 1], gantries[k]
        diff = ((g1 - g0 + 180.0) % 360.0) - 180.0
        groups.append(([k], float(frac[k - 1]), (g0 + 0.5 * diff) % 360.0))
    return groups


def _field_of(cp0: Any, cp1: Any, collimator_deg: float) -> list[Any]:
    """Fields (collimator 0 frame of the simulator) of the aperture between two control points."""
    from intrepid.physics import Field

    jx = cp1.jaw_x_mm or (-200.0, 200.0)
    jy = cp1.jaw_y_mm or (-200.0, 200.0)
    m0, m1 = cp0.mlc_mm, cp1.mlc_mm
    leaves = None
    if m1 is not None:
        leaves = np.asarray(m1) if m0 is None else 0.5 * (np.asarray(m0) + np.asarray(m1))
    from intrepid.simulate._invivo_plans import LEAF_BOUNDARIES_MM

    if abs(((collimator_deg + 180.0) % 360.0) - 180.0) < 1e-6:
        return [
            Field.from_jaws_and_mlc(
                jx[0],
                jx[1],
                jy[0],
                jy[1],
                LEAF_BOUNDARIES_MM.tolist(),
                None if leaves is None else leaves.reshape(-1),
            )
        ]
    # rotated collimator: one polygon per connected opening, rotated into the gantry frame
    from shapely.geometry import box
    from shapely.ops import unary_union

    rects = []
    if leaves is None:
        rects.append(box(jx[0], jy[0], jx[1], jy[1]))
    else:
        lv = leaves.reshape(2, -1)
        for i in range(lv.shape[1]):
            lo, hi = LEAF_BOUNDARIES_MM[i], LEAF_BOUNDARIES_MM[i + 1]
            a, b = max(lv[0, i], jx[0]), min(lv[1, i], jx[1])
            y0, y1 = max(lo, jy[0]), min(hi, jy[1])
            if b - a > 1e-6 and y1 - y0 > 1e-6:
                rects.append(box(a, y0, b, y1))
    shape = unary_union(rects)
    c, s = math.cos(math.radians(collimator_deg)), math.sin(math.radians(collimator_deg))
    polys = list(getattr(shape, "geoms", [shape]))
    fields = []
    for poly in polys:
        xy = np.asarray(poly.exterior.coords)[:-1]
        rot = np.column_stack([c * xy[:, 0] - s * xy[:, 1], s * xy[:, 0] + c * xy[:, 1]])
        fields.append(Field.from_polygon(rot, name="mlc-rotated"))
    return fields


def _detector() -> Any:
    """The simulated EPID: an Elekta iView geometry (SID 1600 mm, 410 mm panel) read out 2 × 2 binned
    (512 × 512 pixels of 0.81 mm), which cuts the simulation time fourfold; 0.81 mm at the detector is
    0.5 mm at the isocentre, far below the 4–5 mm dose grids the images are back-projected onto."""
    from intrepid.physics import DetectorModel

    return DetectorModel.elekta_iview(rows=512, columns=512, pixel_mm=0.81)


def _transit_frames(ct: Volume, plan: RTPlan, planned: RTPlan, seed: int) -> tuple[TransitFrame, ...]:
    from intrepid.physics import simulate_transit

    detector = _detector()
    frames = []
    rng = np.random.default_rng([int(seed), 104729])
    for b, pb in zip(plan.beams, planned.beams, strict=True):
        mu_beam = float(b.meterset or 0.0)
        planned_groups = _segment_fields(pb)
        for gi, (segs, frac, gantry) in enumerate(_segment_fields(b)):
            epid_sum: NDArray[np.float64] | None = None
            dose_sum: NDArray[np.float64] | None = None
            grid = None
            meta: dict[str, Any] = {}
            w = np.array([cp.cumulative_meterset_weight for cp in b.control_points], dtype=float)
            for k in segs:
                share = (w[k] - w[k - 1]) / (w[-1] - w[0])
                cp0, cp1 = b.control_points[k - 1], b.control_points[k]
                for fld in _field_of(cp0, cp1, cp1.collimator_deg):
                    img = simulate_transit(
                        ct,
                        fld,
                        gantry_deg=gantry,
                        isocenter_mm=cp1.isocenter_mm,
                        mu=max(mu_beam * share, 1e-3),
                        detector=detector,
                        seed=int(rng.integers(0, 2**31 - 1)),
                    )
                    e = np.asarray(img.epid.array, dtype=np.float64)
                    d = np.asarray(img.portal_dose.array, dtype=np.float64)
                    epid_sum = e if epid_sum is None else epid_sum + e
                    dose_sum = d if dose_sum is None else dose_sum + d
                    grid, meta = img.portal_dose.grid, img.metadata
            if epid_sum is None or dose_sum is None or grid is None:
                continue
            for_uid = ct.frame_of_reference_uid
            frames.append(
                TransitFrame(
                    beam_number=b.number,
                    gantry_deg=float(gantry),
                    planned_gantry_deg=float(planned_groups[min(gi, len(planned_groups) - 1)][2]),
                    epid=Volume(epid_sum, grid, Quantity.EPID_SIGNAL, "CU", for_uid),
                    portal_dose=Volume(dose_sum, grid, Quantity.PORTAL_DOSE, "Gy", for_uid),
                    mu=mu_beam * frac,
                    sid_mm=float(meta.get("sid_mm", 1600.0)),
                    sad_mm=float(meta.get("sad_mm", 1000.0)),
                )
            )
    return tuple(frames)


# ------------------------------------------------------------------------------------------- the case
def _ptv_points(phantom: PatientPhantom) -> NDArray[np.float64]:
    idx = np.argwhere(phantom.structures["PTV"])[:, ::-1].astype(float)
    return phantom.ct.grid.index_to_world(idx)


def make_invivo_case(spec: InvivoCaseSpec) -> InvivoCase:
    """Simulate one fraction (see the module docstring).

    Parameters
    ----------
    spec : InvivoCaseSpec

    Returns
    -------
    InvivoCase
    """
    t0 = time.perf_counter()
    errors = tuple(parse_error_spec(s) for s in spec.errors)
    kind = spec.plan if isinstance(spec.plan, PlanKind) else PlanKind(str(spec.plan).lower())
    phantom = make_patient_case_phantom(spec.site, spacing_mm=spec.spacing_mm, anatomy_seed=spec.anatomy_seed)
    pts = _ptv_points(phantom)
    plan = make_plan(
        kind, pts, phantom.isocenter_mm, frame_of_reference_uid=phantom.ct.frame_of_reference_uid
    )
    per_beam, total = plan_doses(phantom.ct, plan)
    d50 = float(np.median(np.asarray(total.array)[phantom.structures["PTV"]]))
    if not d50 > 0:
        raise ParameterError("the plan gives no dose to the PTV; cannot calibrate the monitor units")
    factor = spec.prescription_gy / d50
    plan = scale_plan_mu(plan, factor)
    planned_beams = {n: v.with_array(np.asarray(v.array) * factor) for n, v in per_beam.items()}
    planned = total.with_array(np.asarray(total.array) * factor)
    t_plan = time.perf_counter()

    delivered_phantom = apply_patient_errors(phantom, errors)
    delivered_plan = apply_plan_errors(
        plan, errors, target_points_mm=pts, isocenter_mm=phantom.isocenter_mm, kind=kind.value, seed=spec.seed
    )
    if errors:
        del_beams, delivered = plan_doses(delivered_phantom.ct, delivered_plan)
    else:
        del_beams, delivered = dict(planned_beams), planned
    t_del = time.perf_counter()
    frames = _transit_frames(delivered_phantom.ct, delivered_plan, plan, spec.seed)
    t_epid = time.perf_counter()
    timings = {"plan_dose_s": t_plan - t0, "delivered_dose_s": t_del - t_plan, "transit_s": t_epid - t_del}
    _log.info("in-vivo case %s/%s %s: %.1f s", phantom.site.value, kind.value, list(spec.errors), t_epid - t0)
    return InvivoCase(
        spec,
        phantom,
        delivered_phantom,
        plan,
        delivered_plan,
        errors,
        planned_beams,
        planned,
        del_beams,
        delivered,
        frames,
        timings,
    )


def write_invivo_case(case: InvivoCase, out_dir: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write the STUDY_DIR of a case (see the module docstring), atomically (a temporary sibling renamed).

    Parameters
    ----------
    case : InvivoCase
    out_dir : path-like
        The study folder; it must not exist or be empty unless ``overwrite``.

    Returns
    -------
    Path
        ``out_dir``.
    """
    from intrepid.dicom import (
        StructureDefinition,
        Vendor,
        write_ct_series,
        write_rtdose,
        write_rtimage,
        write_rtstruct,
    )
    from intrepid.dicom._write_rtplan import write_rtplan

    dest = Path(out_dir)
    if dest.exists() and any(dest.iterdir()) and not overwrite:
        raise ParameterError(f"{dest}: output folder exists and is not empty (use --overwrite)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{dest.name}-", dir=dest.parent))
    try:
        ph = case.phantom
        pid = f"INVIVO_{ph.site.value.upper()}"[:64]
        series = write_ct_series(
            ph.ct, tmp / "CT", patient_id=pid, series_description=f"InTrEPID {ph.site.value}"
        )
        structs = [
            StructureDefinition(
                name,
                Volume(mask, ph.ct.grid, Quantity.MASK, "", ph.ct.frame_of_reference_uid),
                roi_type=ph.roi_types.get(name, "ORGAN"),
                color_rgb=_COLORS.get(ph.roi_types.get(name, "ORGAN"), (200, 200, 0)),
            )
            for name, mask in ph.structures.items()
            if mask.any()
        ]
        rs_path = write_rtstruct(tmp / "RTSTRUCT.dcm", structs, series)
        import pydicom

        rs_uid = str(pydicom.dcmread(rs_path, stop_before_pixels=True).SOPInstanceUID)
        study, for_uid = series.study_instance_uid, series.frame_of_reference_uid
        plan_path = write_rtplan(
            case.plan,
            tmp / "RTPLAN.dcm",
            patient_id=pid,
            study_instance_uid=study,
            frame_of_reference_uid=for_uid,
            structure_set_uid=rs_uid,
            prescription_gy=case.spec.prescription_gy,
        )
        plan_uid = str(pydicom.dcmread(plan_path, stop_before_pixels=True).SOPInstanceUID)
        common: dict[str, Any] = dict(
            patient_id=pid, study_instance_uid=study, frame_of_reference_uid=for_uid
        )
        _write_dose(
            write_rtdose,
            case.planned_dose,
            tmp / "RTDOSE_plan.dcm",
            "PLAN",
            plan_uid,
            None,
            "planned dose (plan)",
            common,
        )
        for n, v in case.planned_beam_doses.items():
            _write_dose(
                write_rtdose,
                v,
                tmp / f"RTDOSE_beam_{n}.dcm",
                "BEAM",
                plan_uid,
                n,
                f"planned dose beam {n}",
                common,
            )
        _write_dose(
            write_rtdose,
            case.delivered_dose,
            tmp / "delivered_dose.dcm",
            "PLAN",
            plan_uid,
            None,
            "delivered dose (truth)",
            common,
        )
        (tmp / "transit").mkdir()
        (tmp / "portal_dose").mkdir()
        counts: dict[int, int] = {}
        for fr in case.transit:
            k = counts.get(fr.beam_number, 0)
            counts[fr.beam_number] = k + 1
            name = f"beam_{fr.beam_number}.dcm" if k == 0 else f"beam_{fr.beam_number}_{k}.dcm"
            g = fr.epid.grid
            write_rtimage(
                tmp / "transit" / name,
                fr.epid.array,
                pixel_spacing_mm=(g.spacing_mm[1], g.spacing_mm[0]),
                sid_mm=fr.sid_mm,
                sad_mm=fr.sad_mm,
                gantry_deg=fr.gantry_deg,
                collimator_deg=0.0,
                couch_deg=0.0,
                vendor=Vendor.VARIAN,
                quantity=Quantity.EPID_SIGNAL,
                units="CU",
                meterset=fr.mu,
                referenced_plan_uid=plan_uid,
                referenced_beam_number=fr.beam_number,
                description=f"transit EPID beam {fr.beam_number}",
                **common,
            )
            write_rtimage(
                tmp / "portal_dose" / name,
                fr.portal_dose.array,
                pixel_spacing_mm=(g.spacing_mm[1], g.spacing_mm[0]),
                sid_mm=fr.sid_mm,
                sad_mm=fr.sad_mm,
                gantry_deg=fr.gantry_deg,
                collimator_deg=0.0,
                couch_deg=0.0,
                vendor=Vendor.GENERIC,
                quantity=Quantity.PORTAL_DOSE,
                units="Gy",
                meterset=fr.mu,
                referenced_plan_uid=plan_uid,
                referenced_beam_number=fr.beam_number,
                description=f"portal dose beam {fr.beam_number}",
                **common,
            )
        info = case.describe()
        info["transit_frames"] = [
            {"beam_number": f.beam_number, "gantry_deg": f.gantry_deg, "mu": f.mu} for f in case.transit
        ]
        (tmp / "case.json").write_text(json.dumps(info, indent=2) + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


_COLORS = {
    "EXTERNAL": (0, 255, 0),
    "PTV": (255, 0, 0),
    "GTV": (255, 128, 0),
    "CTV": (255, 160, 0),
    "ORGAN": (0, 128, 255),
    "CAVITY": (128, 128, 128),
}


def _write_dose(
    writer: Any,
    volume: Volume,
    path: Path,
    summation: str,
    plan_uid: str,
    beam: int | None,
    description: str,
    common: dict[str, Any],
) -> None:
    """Write a dose that references the plan (and the beam for BEAM summations) through the writer's
    ``reference`` (an :class:`~intrepid.dicom.RTDose` carrying the plan link)."""
    from intrepid.dicom import RTDose

    vol = volume.with_array(
        np.maximum(np.asarray(volume.array, dtype=np.float64), 0.0),
        units="Gy",
        quantity=Quantity.DOSE,
        frame_of_reference_uid=common["frame_of_reference_uid"],
    )
    ref = RTDose(
        volume=vol,
        dose_units="GY",
        dose_type="PHYSICAL",
        summation_type=summation,
        referenced_plan_uid=plan_uid,
        referenced_fraction_group_number=1,
        referenced_beam_numbers=() if beam is None else (int(beam),),
        study_instance_uid=common["study_instance_uid"],
        patient_id=common["patient_id"],
        patient_name="Anonymous^InTrEPID",
    )
    writer(
        vol,
        path,
        reference=ref,
        summation_type=summation,
        description=description,
        frame_of_reference_uid=common["frame_of_reference_uid"],
    )


def spec_from_args(
    site: str,
    plan: str,
    errors: Sequence[str],
    seed: int,
    spacing_mm: float,
    anatomy_seed: int | None = None,
) -> InvivoCaseSpec:
    """An :class:`InvivoCaseSpec` from CLI values, validated (errors parsed now so a bad SPEC fails early)."""
    for s in errors:
        parse_error_spec(s)
    kind = PlanKind(plan) if plan in {k.value for k in PlanKind} else None
    if kind is None:
        raise ParameterError(f"--plan must be one of {', '.join(k.value for k in PlanKind)}, got {plan!r}")
    specs = [parse_error_spec(s) for s in errors]
    if any(e.kind is ErrorKind.ANATOMY_CAVITY for e in specs) and site == "tg119":
        raise ParameterError("--error anatomy:cavity: the tg119 phantom has no air cavity")
    return replace(
        InvivoCaseSpec(),
        site=site,
        plan=kind,
        errors=tuple(errors),
        seed=int(seed),
        spacing_mm=float(spacing_mm),
        anatomy_seed=None if anatomy_seed is None else int(anatomy_seed),
    )
