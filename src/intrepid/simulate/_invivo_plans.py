"""Photon treatment plans for the in-vivo cases: a 4-field box, 7-field step-and-shoot IMRT, VMAT-like arcs.

The plans are made the way a planner would start them, without an optimiser: every aperture is the
beam's-eye-view projection of the PTV with a margin, conformed by an 80-pair MLC of 5 mm leaves (leaf
boundaries −200 … +200 mm at the isocentre, MLCX, jaws ASYMX / ASYMY); the source-to-device distances are
left to the shared head model (:class:`intrepid.physics.LinacHead`).

- ``box4``: gantry 0°, 90°, 180°, 270°, one static conformal segment each (the seed's "4beams" plan).
- ``imrt7``: seven equispaced gantry angles (0°, 51°, 103°, …) with four step-and-shoot segments each:
  the conformal aperture, the aperture with bank A pulled in by a third of the opening, the same for bank B,
  and the central half of the leaf rows; meterset weights 0.4 / 0.2 / 0.2 / 0.2. The fluence is modulated
  (three levels across the target) as in a step-and-shoot IMRT beam, though it is not optimised.
- ``vmat``: one clockwise arc 181° → 179° with a control point every 20°, conformal apertures whose leaves
  are pulled in by a sinusoidally varying fraction (0–25 %) of the opening, uniform meterset weights.

Monitor units are placeholders here (100 MU per beam); :func:`intrepid.simulate.make_invivo_case` scales
them with the dose engine so that the PTV median dose is the prescription.
"""

from __future__ import annotations

import enum
import math
from dataclasses import replace

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom import (
    Beam,
    BeamLimitingDevice,
    BeamLimitingDeviceType,
    BeamType,
    ControlPoint,
    FractionGroup,
    ReferencedBeam,
    RotationDirection,
    RTPlan,
)
from intrepid.errors import ParameterError
from intrepid.geometry import Frame, MachineAngles, PatientPosition, frame_transform

__all__ = [
    "LEAF_BOUNDARIES_MM",
    "PlanKind",
    "bev_coordinates_mm",
    "conformal_leaves",
    "make_plan",
    "scale_plan_mu",
]

#: Leaf Position Boundaries of the MLC (mm at the isocentre): 80 pairs of 5 mm (Elekta Agility).
LEAF_BOUNDARIES_MM = np.linspace(-200.0, 200.0, 81)
#: Source-axis distance of the linac, mm.
SAD_MM = 1000.0
#: Margin around the PTV projection for the aperture, mm at the isocentre (beam penumbra margin).
APERTURE_MARGIN_MM = 5.0


class PlanKind(enum.Enum):
    """The plan templates of :func:`make_plan`."""

    BOX4 = "box4"
    IMRT7 = "imrt7"
    VMAT = "vmat"


def bev_coordinates_mm(
    points_mm: NDArray[np.float64], angles: MachineAngles, isocenter_mm: tuple[float, float, float],
    sad_mm: float = SAD_MM,
) -> NDArray[np.float64]:
    """Beam's-eye-view coordinates (x_b, y_b) at the isocentre plane of LPS points (head-first supine).

    Each point is projected from the source onto the plane through the isocentre perpendicular to the beam
    axis, in the IEC beam-limiting-device frame (turns with the collimator).

    Returns
    -------
    ndarray, shape (N, 2)
    """
    m = frame_transform(Frame.PATIENT_LPS, Frame.BEAM_LIMITING_DEVICE, angles,
                        patient_position=PatientPosition.HFS, isocenter_mm=isocenter_mm)
    p = np.asarray(points_mm, dtype=float).reshape(-1, 3)
    b = p @ m[:3, :3].T + m[:3, 3]
    scale = sad_mm / (sad_mm - b[:, 2])
    return np.column_stack([b[:, 0] * scale, b[:, 1] * scale])


def conformal_leaves(
    bev_mm: NDArray[np.float64], margin_mm: float = APERTURE_MARGIN_MM,
    boundaries_mm: NDArray[np.float64] = LEAF_BOUNDARIES_MM,
) -> tuple[NDArray[np.float64], tuple[float, float, float, float]]:
    """MLC and jaws conforming to projected points with a margin.

    Parameters
    ----------
    bev_mm : ndarray, shape (N, 2)
        Projected target points (x_b, y_b), mm at the isocentre.
    margin_mm : float
        Margin added in x (leaf direction) and y (across leaves), mm.

    Returns
    -------
    leaves : ndarray, shape (2, pairs)
        Bank A (row 0) and bank B (row 1) tip positions; closed pairs meet at the middle of the opening.
    jaws : (x1, x2, y1, y2)
        Jaws around the open leaves, mm.
    """
    if bev_mm.size == 0:
        raise ParameterError("the target projects to nothing: is the PTV empty?")
    n = boundaries_mm.size - 1
    a = np.zeros(n)
    b = np.zeros(n)
    x, y = bev_mm[:, 0], bev_mm[:, 1]
    xc = float(0.5 * (x.min() + x.max()))
    open_rows = np.zeros(n, dtype=bool)
    for i in range(n):
        lo, hi = boundaries_mm[i], boundaries_mm[i + 1]
        sel = (y >= lo - margin_mm) & (y <= hi + margin_mm)
        if sel.any():
            a[i] = x[sel].min() - margin_mm
            b[i] = x[sel].max() + margin_mm
            open_rows[i] = True
        else:
            a[i] = b[i] = xc
    rows = np.flatnonzero(open_rows)
    y1 = float(max(boundaries_mm[rows[0]], y.min() - margin_mm))
    y2 = float(min(boundaries_mm[rows[-1] + 1], y.max() + margin_mm))
    jaws = (float(a[open_rows].min()), float(b[open_rows].max()), y1, y2)
    return np.vstack([a, b]), jaws


def _devices() -> tuple[BeamLimitingDevice, ...]:
    return (
        BeamLimitingDevice(BeamLimitingDeviceType.ASYMX, 1),
        BeamLimitingDevice(BeamLimitingDeviceType.ASYMY, 1),
        BeamLimitingDevice(BeamLimitingDeviceType.MLCX, LEAF_BOUNDARIES_MM.size - 1,
                           LEAF_BOUNDARIES_MM.copy()),
    )


def _cp(index: int, weight: float, gantry: float, iso: tuple[float, float, float],
        leaves: NDArray[np.float64],
        jaws: tuple[float, float, float, float], direction: RotationDirection = RotationDirection.NONE,
        collimator: float = 0.0) -> ControlPoint:
    return ControlPoint(
        index=index, cumulative_meterset_weight=float(weight), meterset=None,
        gantry_deg=float(gantry) % 360.0,
        gantry_rotation_direction=direction, collimator_deg=float(collimator), couch_deg=0.0,
        isocenter_mm=iso, nominal_energy=6.0,
        device_positions_mm={
            BeamLimitingDeviceType.ASYMX: np.array(jaws[:2], dtype=float),
            BeamLimitingDeviceType.ASYMY: np.array(jaws[2:], dtype=float),
            BeamLimitingDeviceType.MLCX: np.asarray(leaves, dtype=float).reshape(-1).copy(),
        },
    )


def _beam(number: int, name: str, cps: list[ControlPoint], mu: float, dynamic: bool) -> Beam:
    return Beam(
        number=number, name=name, radiation_type="PHOTON", treatment_delivery_type="TREATMENT",
        beam_type=BeamType.DYNAMIC if dynamic else BeamType.STATIC, primary_dosimeter_unit="MU",
        sad_mm=(SAD_MM, SAD_MM), nominal_energy=6.0, energy_unit="MV", meterset=float(mu), beam_dose_gy=None,
        final_cumulative_meterset_weight=1.0, devices=_devices(), control_points=tuple(cps),
        treatment_machine_name="INTREPID_LINAC", patient_position=PatientPosition.HFS,
    )


def _pull(leaves: NDArray[np.float64], bank: int, fraction: float) -> NDArray[np.float64]:
    out = leaves.copy()
    width = leaves[1] - leaves[0]
    if bank == 0:
        out[0] = leaves[0] + fraction * width
    else:
        out[1] = leaves[1] - fraction * width
    return out


def make_plan(
    kind: PlanKind | str,
    target_points_mm: NDArray[np.float64],
    isocenter_mm: tuple[float, float, float],
    *,
    frame_of_reference_uid: str | None = None,
    mu_per_beam: float = 100.0,
    label: str = "",
) -> RTPlan:
    """A plan of ``kind`` conforming to the target.

    Parameters
    ----------
    kind : PlanKind or str
        ``box4``, ``imrt7`` or ``vmat``.
    target_points_mm : ndarray, shape (N, 3)
        LPS points filling the PTV (e.g. its voxel centres), mm.
    isocenter_mm : tuple of 3 float
        Plan isocentre, LPS mm.
    frame_of_reference_uid : str, optional
        Frame of Reference of the CT.
    mu_per_beam : float
        Meterset of each beam before calibration (MU).
    label : str
        RT Plan Label (default: the kind).

    Returns
    -------
    RTPlan
        One fraction group, head-first supine.
    """
    try:
        k = kind if isinstance(kind, PlanKind) else PlanKind(str(kind).lower())
    except ValueError:
        kinds = ", ".join(m.value for m in PlanKind)
        raise ParameterError(f"plan must be one of {kinds}, got {kind!r}") from None
    pts = np.asarray(target_points_mm, dtype=float).reshape(-1, 3)
    iso = (float(isocenter_mm[0]), float(isocenter_mm[1]), float(isocenter_mm[2]))
    beams: list[Beam] = []
    if k is PlanKind.BOX4:
        for n, g in enumerate((0.0, 90.0, 180.0, 270.0), start=1):
            leaves, jaws = conformal_leaves(bev_coordinates_mm(pts, MachineAngles(g), iso))
            static = [_cp(0, 0.0, g, iso, leaves, jaws), _cp(1, 1.0, g, iso, leaves, jaws)]
            beams.append(_beam(n, f"G{int(g):03d}", static, mu_per_beam, False))
    elif k is PlanKind.IMRT7:
        for n in range(7):
            g = round(n * 360.0 / 7.0)
            leaves, jaws = conformal_leaves(bev_coordinates_mm(pts, MachineAngles(g), iso))
            open_rows = np.flatnonzero(leaves[1] - leaves[0] > 1e-6)
            central = leaves.copy()
            q = max(1, open_rows.size // 4)
            for r in list(open_rows[:q]) + list(open_rows[-q:]):
                central[:, r] = 0.5 * (leaves[0, r] + leaves[1, r])
            segments = [(leaves, 0.4), (_pull(leaves, 0, 1 / 3), 0.2), (_pull(leaves, 1, 1 / 3), 0.2),
                        (central, 0.2)]
            cps: list[ControlPoint] = []
            w = 0.0
            for seg, weight in segments:
                cps.append(_cp(len(cps), w, g, iso, seg, jaws))
                w = min(1.0, w + weight)
                cps.append(_cp(len(cps), w, g, iso, seg, jaws))
            cps[-1] = replace(cps[-1], cumulative_meterset_weight=1.0)
            beams.append(_beam(n + 1, f"IMRT{n + 1}_G{g:03d}", cps, mu_per_beam, False))
    else:
        angles = [181.0 + 20.0 * i for i in range(19)]
        arc: list[ControlPoint] = []
        for i, g in enumerate(angles):
            leaves, jaws = conformal_leaves(bev_coordinates_mm(pts, MachineAngles(g % 360.0), iso))
            f = 0.125 * (1.0 - math.cos(2.0 * math.pi * i / 6.0))
            seg = _pull(_pull(leaves, 0, f), 1, 0.5 * f)
            arc.append(_cp(i, i / (len(angles) - 1), g, iso, seg, jaws, RotationDirection.CW))
        arc[-1] = replace(arc[-1], gantry_rotation_direction=RotationDirection.NONE)
        beams.append(_beam(1, "ARC1_CW", arc, 3.0 * mu_per_beam, True))
    refs = tuple(ReferencedBeam(b.number, b.meterset, None) for b in beams)
    return RTPlan(label=(label or k.value)[:16], name=f"InTrEPID {k.value}", sop_instance_uid="",
                  frame_of_reference_uid=frame_of_reference_uid, patient_position=PatientPosition.HFS,
                  fraction_groups=(FractionGroup(1, 1, refs),), beams=tuple(beams))


def scale_plan_mu(plan: RTPlan, factor: float) -> RTPlan:
    """The same plan with every beam's meterset multiplied by ``factor`` (> 0)."""
    f = float(factor)
    if not (math.isfinite(f) and f > 0):
        raise ParameterError(f"MU scale factor must be > 0, got {factor}")
    beams = tuple(replace(b, meterset=(b.meterset or 0.0) * f) for b in plan.beams)
    groups = tuple(
        replace(g, referenced_beams=tuple(replace(r, beam_meterset=(r.beam_meterset or 0.0) * f)
                                          for r in g.referenced_beams))
        for g in plan.fraction_groups
    )
    return replace(plan, beams=beams, fraction_groups=groups)
