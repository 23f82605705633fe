"""Reading DICOM RT Plans and RT Ion Plans: fraction groups, beams, devices and control points.

Control points are returned with DICOM's inheritance resolved: the standard lets a control point omit the
gantry, collimator and couch angles, the isocentre, the energy, the snout position, the range-shifter
settings and any beam-limiting device position that has not changed since the previous control point; here
every :class:`ControlPoint` carries the values in force. Angles are in degrees, positions in mm, the meterset
in the beam's Primary Dosimeter Unit (MU for photons, NP or MU for ions).
"""

from __future__ import annotations

import enum
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydicom.dataset import Dataset

from intrepid.dicom._common import describe_tag, get_tag, read_dataset
from intrepid.dicom._validate import reader
from intrepid.errors import DicomError, IntrepidError, ParameterError
from intrepid.geometry import PatientPosition

__all__ = [
    "Beam",
    "BeamLimitingDevice",
    "BeamLimitingDeviceType",
    "BeamType",
    "Block",
    "BlockType",
    "ControlPoint",
    "FractionGroup",
    "IonBlock",
    "RTPlan",
    "RangeCompensator",
    "RangeShifter",
    "RangeShifterSetting",
    "ReferencedBeam",
    "RotationDirection",
    "Wedge",
    "read_rtplan",
]

_log = logging.getLogger(__name__)


class BeamType(enum.Enum):
    """Beam Type (300A,00C4)."""

    STATIC = "STATIC"
    DYNAMIC = "DYNAMIC"


class RotationDirection(enum.Enum):
    """Gantry, Beam Limiting Device or Patient Support Rotation Direction: CW, CC or NONE."""

    NONE = "NONE"
    CW = "CW"
    CC = "CC"


class BeamLimitingDeviceType(enum.Enum):
    """RT Beam Limiting Device Type (300A,00B8): symmetric / asymmetric jaws and multileaf collimators."""

    X = "X"
    Y = "Y"
    ASYMX = "ASYMX"
    ASYMY = "ASYMY"
    MLCX = "MLCX"
    MLCY = "MLCY"

    @property
    def is_mlc(self) -> bool:
        """True for MLCX and MLCY."""
        return self in (BeamLimitingDeviceType.MLCX, BeamLimitingDeviceType.MLCY)


class BlockType(enum.Enum):
    """Block Type (300A,00F8): an aperture lets radiation through its opening; a shielding block stops it."""

    APERTURE = "APERTURE"
    SHIELDING = "SHIELDING"


def _ro(a: NDArray[Any]) -> NDArray[Any]:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class BeamLimitingDevice:
    """A beam-limiting device of a beam (Beam Limiting Device Sequence item).

    Parameters
    ----------
    device_type : BeamLimitingDeviceType
    number_of_pairs : int
        Number of Leaf/Jaw Pairs (1 for jaws).
    leaf_boundaries_mm : ndarray, shape (number_of_pairs + 1,), or None
        Leaf Position Boundaries (MLC only), mm at the isocentre plane.
    source_to_device_distance_mm : float or None
        Source to Beam Limiting Device Distance (photon beams).
    isocenter_to_device_distance_mm : float or None
        Isocenter to Beam Limiting Device Distance (ion beams).
    """

    device_type: BeamLimitingDeviceType
    number_of_pairs: int
    leaf_boundaries_mm: NDArray[np.float64] | None = None
    source_to_device_distance_mm: float | None = None
    isocenter_to_device_distance_mm: float | None = None

    @property
    def leaf_widths_mm(self) -> NDArray[np.float64] | None:
        """Widths of the leaves (mm at the isocentre), from the boundaries; None for jaws."""
        return None if self.leaf_boundaries_mm is None else np.diff(self.leaf_boundaries_mm)


@dataclass(frozen=True)
class RangeShifter:
    """A range shifter of an ion beam (Range Shifter Sequence item)."""

    number: int
    id: str
    shifter_type: str  #: "ANALOG" or "BINARY"
    material: str = ""


@dataclass(frozen=True)
class RangeShifterSetting:
    """Range-shifter setting at a control point (Range Shifter Settings Sequence item)."""

    range_shifter_number: int
    setting: str  #: "IN"/"OUT" for binary shifters, the setting for analog ones
    water_equivalent_thickness_mm: float | None = None
    isocenter_to_range_shifter_mm: float | None = None


@dataclass(frozen=True, eq=False)
class Block:
    """A block: photon (Block Sequence) or ion (Ion Block Sequence).

    Parameters
    ----------
    number, name : int, str
        Block Number and Block Name.
    block_type : BlockType
        APERTURE or SHIELDING.
    divergent : bool
        Block Divergence is PRESENT (edges follow the beam divergence).
    mounting_position : str
        Block Mounting Position (PATIENT_SIDE or SOURCE_SIDE); ``""`` for photon blocks, which lack it.
    thickness_mm : float or None
        Block Thickness.
    material : str
        Material ID.
    points_mm : ndarray, shape (n, 2)
        Block Data: the outline (x, y) in mm in the beam-limiting-device frame, projected to the isocentre
        plane (as the standard defines it).
    tray_id : str
        Block Tray ID.
    isocenter_to_block_tray_mm : float or None
        Isocenter to Block Tray Distance (ion blocks).
    source_to_block_tray_mm : float or None
        Source to Block Tray Distance (photon blocks).
    transmission : float or None
        Block Transmission (photon blocks).
    """

    number: int
    name: str
    block_type: BlockType
    divergent: bool
    mounting_position: str
    thickness_mm: float | None
    material: str
    points_mm: NDArray[np.float64]
    tray_id: str = ""
    isocenter_to_block_tray_mm: float | None = None
    source_to_block_tray_mm: float | None = None
    transmission: float | None = None


@dataclass(frozen=True, eq=False)
class IonBlock(Block):
    """A block of an ion beam (Ion Block Sequence item); same fields as :class:`Block`."""


@dataclass(frozen=True, eq=False)
class RangeCompensator:
    """An ion range compensator (Ion Range Compensator Sequence item).

    Parameters
    ----------
    number, id : int, str
        Compensator Number and ID.
    thickness_mm : ndarray, shape (rows, columns)
        Compensator Thickness Data in mm along the beam.
    pixel_spacing_mm : tuple of 2 float
        Compensator Pixel Spacing (row spacing, column spacing) in mm at the isocentre plane.
    position_mm : tuple of 2 float
        Compensator Position: (x, y) of the upper-left corner of the grid, mm, beam-limiting-device frame.
    relative_stopping_power : float or None
        Compensator Relative Stopping Power Ratio (to water).
    milling_tool_diameter_mm : float or None
    isocenter_to_compensator_tray_mm : float or None
    isocenter_to_compensator_distances_mm : ndarray, shape (rows, columns), or None
        Distances from the isocentre to the compensator surface facing the source, per pixel.
    mounting_position : str
        PATIENT_SIDE, SOURCE_SIDE or DOUBLE_SIDED.
    divergent : bool
        Compensator Divergence is PRESENT.
    material : str
    """

    number: int
    id: str
    thickness_mm: NDArray[np.float64]
    pixel_spacing_mm: tuple[float, float]
    position_mm: tuple[float, float]
    relative_stopping_power: float | None
    milling_tool_diameter_mm: float | None
    isocenter_to_compensator_tray_mm: float | None
    isocenter_to_compensator_distances_mm: NDArray[np.float64] | None
    mounting_position: str
    divergent: bool
    material: str = ""


@dataclass(frozen=True)
class Wedge:
    """A wedge (Wedge Sequence or Ion Wedge Sequence item)."""

    number: int
    id: str
    wedge_type: str  #: STANDARD, DYNAMIC, MOTORIZED (photon) or the ion wedge type
    angle_deg: float | None
    orientation_deg: float | None
    factor: float | None = None
    source_to_wedge_tray_mm: float | None = None
    isocenter_to_wedge_tray_mm: float | None = None


@dataclass(frozen=True, eq=False)
class ControlPoint:
    """A control point with inherited values resolved.

    Parameters
    ----------
    index : int
        Control Point Index.
    cumulative_meterset_weight : float
    meterset : float or None
        Meterset delivered up to this control point: beam meterset × weight / final weight (MU, or NP for
        ions). None when the fraction group gives no Beam Meterset.
    gantry_deg, collimator_deg, couch_deg : float
        Gantry Angle, Beam Limiting Device Angle and Patient Support Angle (IEC 61217), degrees.
    gantry_rotation_direction : RotationDirection
    isocenter_mm : tuple of 3 float
        Isocenter Position, patient LPS, mm.
    nominal_energy : float or None
        Nominal Beam Energy (MV for photons, MeV for electrons and ions; see :attr:`Beam.energy_unit`).
    device_positions_mm : dict
        Leaf/Jaw Positions per :class:`BeamLimitingDeviceType` (mm at the isocentre plane): 2 values for
        jaws, ``2 × pairs`` for an MLC (bank A then bank B).
    snout_position_mm : float or None
        Ion beams: Snout Position.
    range_shifter_settings : tuple of RangeShifterSetting
        Ion beams.
    spot_positions_mm : ndarray (n, 2) or None
        Ion pencil-beam scanning: Scan Spot Position Map (x, y) at the isocentre plane.
    spot_meterset_weights : ndarray (n,) or None
    source_to_surface_distance_mm : float or None
        As given at this control point (not inherited).
    """

    index: int
    cumulative_meterset_weight: float
    meterset: float | None
    gantry_deg: float
    gantry_rotation_direction: RotationDirection
    collimator_deg: float
    couch_deg: float
    isocenter_mm: tuple[float, float, float]
    nominal_energy: float | None
    device_positions_mm: dict[BeamLimitingDeviceType, NDArray[np.float64]]
    snout_position_mm: float | None = None
    range_shifter_settings: tuple[RangeShifterSetting, ...] = ()
    spot_positions_mm: NDArray[np.float64] | None = None
    spot_meterset_weights: NDArray[np.float64] | None = None
    source_to_surface_distance_mm: float | None = None

    def _pair(self, *types: BeamLimitingDeviceType) -> tuple[float, float] | None:
        for t in types:
            pos = self.device_positions_mm.get(t)
            if pos is not None and pos.size == 2:
                return (float(pos[0]), float(pos[1]))
        return None

    @property
    def jaw_x_mm(self) -> tuple[float, float] | None:
        """(X1, X2) jaw positions in mm (from ASYMX or X), or None."""
        return self._pair(BeamLimitingDeviceType.ASYMX, BeamLimitingDeviceType.X)

    @property
    def jaw_y_mm(self) -> tuple[float, float] | None:
        """(Y1, Y2) jaw positions in mm (from ASYMY or Y), or None."""
        return self._pair(BeamLimitingDeviceType.ASYMY, BeamLimitingDeviceType.Y)

    @property
    def mlc_mm(self) -> NDArray[np.float64] | None:
        """MLC leaf positions, shape (2, pairs): row 0 bank A (negative side), row 1 bank B; None: no MLC."""
        for t in (BeamLimitingDeviceType.MLCX, BeamLimitingDeviceType.MLCY):
            pos = self.device_positions_mm.get(t)
            if pos is not None:
                return pos.reshape(2, -1)
        return None


@dataclass(frozen=True, eq=False)
class Beam:
    """A photon, electron or ion beam of a plan.

    Parameters
    ----------
    number, name : int, str
        Beam Number and Beam Name.
    radiation_type : str
        Radiation Type: PHOTON, ELECTRON, PROTON, ION, NEUTRON.
    treatment_delivery_type : str
        TREATMENT, OPEN_PORTFILM, TRMT_PORTFILM, CONTINUATION, SETUP.
    beam_type : BeamType
        STATIC or DYNAMIC.
    primary_dosimeter_unit : str
        MU, NP (number of particles) or MINUTE.
    sad_mm : tuple of 2 float
        Photons / electrons: Source-Axis Distance twice. Ions: Virtual Source-Axis Distances (x, y), which
        differ for a dual-source (two-scanning-magnet) geometry.
    nominal_energy : float or None
        Energy of the first control point.
    energy_unit : str
        ``"MV"`` (photons), ``"MeV"`` (electrons, ions) or ``"MeV/u"``.
    meterset : float or None
        Beam Meterset from the fraction group (MU or NP).
    beam_dose_gy : float or None
        Beam Dose from the fraction group (Gy per fraction at the dose specification point).
    final_cumulative_meterset_weight : float
    devices : tuple of BeamLimitingDevice
    control_points : tuple of ControlPoint
    blocks : tuple of Block
        Photon blocks (:class:`Block`) or ion blocks (:class:`IonBlock`).
    range_compensators : tuple of RangeCompensator
    wedges : tuple of Wedge
    range_shifters : tuple of RangeShifter
    is_ion : bool
        The beam comes from the Ion Beam Sequence.
    treatment_machine_name, scan_mode, snout_id : str
    patient_position : PatientPosition or None
        From the Patient Setup item the beam references (or the plan's first).
    """

    number: int
    name: str
    radiation_type: str
    treatment_delivery_type: str
    beam_type: BeamType
    primary_dosimeter_unit: str
    sad_mm: tuple[float, float]
    nominal_energy: float | None
    energy_unit: str
    meterset: float | None
    beam_dose_gy: float | None
    final_cumulative_meterset_weight: float
    devices: tuple[BeamLimitingDevice, ...]
    control_points: tuple[ControlPoint, ...]
    blocks: tuple[Block, ...] = ()
    range_compensators: tuple[RangeCompensator, ...] = ()
    wedges: tuple[Wedge, ...] = ()
    range_shifters: tuple[RangeShifter, ...] = ()
    is_ion: bool = False
    treatment_machine_name: str = ""
    scan_mode: str = ""
    snout_id: str = ""
    patient_position: PatientPosition | None = None

    @property
    def gantry_deg(self) -> float:
        """Gantry angle of the first control point, degrees."""
        return self.control_points[0].gantry_deg

    @property
    def collimator_deg(self) -> float:
        """Collimator angle of the first control point, degrees."""
        return self.control_points[0].collimator_deg

    @property
    def couch_deg(self) -> float:
        """Couch (patient support) angle of the first control point, degrees."""
        return self.control_points[0].couch_deg

    @property
    def isocenter_mm(self) -> tuple[float, float, float]:
        """Isocentre of the first control point, LPS mm."""
        return self.control_points[0].isocenter_mm

    @property
    def number_of_control_points(self) -> int:
        """Number of control points."""
        return len(self.control_points)

    def device(self, device_type: BeamLimitingDeviceType | str) -> BeamLimitingDevice | None:
        """The beam-limiting device of that type, or None."""
        t = BeamLimitingDeviceType(device_type) if isinstance(device_type, str) else device_type
        return next((d for d in self.devices if d.device_type is t), None)

    def summary(self) -> dict[str, Any]:
        """JSON-ready facts used by ``intrepid info``: angles, isocentre, SAD, MU, control points, devices."""
        cp0 = self.control_points[0]
        return {
            "number": self.number,
            "name": self.name,
            "radiation_type": self.radiation_type,
            "beam_type": self.beam_type.value,
            "treatment_delivery_type": self.treatment_delivery_type,
            "energy": self.nominal_energy,
            "energy_unit": self.energy_unit,
            "gantry_deg": cp0.gantry_deg,
            "collimator_deg": cp0.collimator_deg,
            "couch_deg": cp0.couch_deg,
            "isocenter_mm": list(cp0.isocenter_mm),
            "sad_mm": list(self.sad_mm),
            "meterset": self.meterset,
            "meterset_unit": self.primary_dosimeter_unit,
            "control_points": len(self.control_points),
            "devices": [
                {"type": d.device_type.value, "pairs": d.number_of_pairs} for d in self.devices
            ],
            "blocks": len(self.blocks),
            "range_compensators": len(self.range_compensators),
            "range_shifters": len(self.range_shifters),
            "wedges": len(self.wedges),
        }


@dataclass(frozen=True)
class ReferencedBeam:
    """A beam of a fraction group with its meterset and dose per fraction."""

    beam_number: int
    beam_meterset: float | None
    beam_dose_gy: float | None
    dose_specification_point_mm: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class FractionGroup:
    """A fraction group (Fraction Group Sequence item)."""

    number: int
    fractions_planned: int | None
    referenced_beams: tuple[ReferencedBeam, ...]


@dataclass(frozen=True, eq=False)
class RTPlan:
    """An RT Plan or RT Ion Plan.

    Parameters
    ----------
    label, name : str
        RT Plan Label and Name.
    sop_instance_uid : str
    frame_of_reference_uid : str or None
        Frame of Reference UID (0020,0052) when the plan carries one.
    patient_position : PatientPosition or None
        Patient Position of the first Patient Setup Sequence item.
    fraction_groups : tuple of FractionGroup
    beams : tuple of Beam
        Photon/electron beams (Beam Sequence) or ion beams (Ion Beam Sequence), in file order.
    source : str
        The file read.
    """

    label: str
    name: str
    sop_instance_uid: str
    frame_of_reference_uid: str | None
    patient_position: PatientPosition | None
    fraction_groups: tuple[FractionGroup, ...]
    beams: tuple[Beam, ...]
    source: str = ""

    @property
    def is_ion(self) -> bool:
        """True for an RT Ion Plan."""
        return any(b.is_ion for b in self.beams)

    def beam(self, key: int | str) -> Beam:
        """The beam of that Beam Number (int) or Beam Name (str, case-insensitive).

        Raises
        ------
        ParameterError
            No such beam; the message lists the beams.
        """
        for b in self.beams:
            if (isinstance(key, str) and b.name.strip().casefold() == key.strip().casefold()) or (
                not isinstance(key, str) and b.number == int(key)
            ):
                return b
        available = ", ".join(f"{b.number} {b.name!r}" for b in self.beams) or "(none)"
        raise ParameterError(f"{self.source}: no beam {key!r} in the plan; available: {available}")

    def summary(self) -> dict[str, Any]:
        """JSON-ready description: label, patient position, fractions and the beams' :meth:`Beam.summary`."""
        return {
            "modality": "RTPLAN",
            "label": self.label,
            "name": self.name,
            "ion": self.is_ion,
            "frame_of_reference_uid": self.frame_of_reference_uid,
            "patient_position": self.patient_position.value if self.patient_position else None,
            "fraction_groups": [
                {"number": g.number, "fractions_planned": g.fractions_planned,
                 "beams": [rb.beam_number for rb in g.referenced_beams]}
                for g in self.fraction_groups
            ],
            "beams": [b.summary() for b in self.beams],
        }


# ---------------------------------------------------------------------------------------------- parsing
class _Ctx:
    """Path and location for messages."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, where: str, message: str) -> DicomError:
        return DicomError(f"{self.path}: {where}: {message}")


def _float(value: Any) -> float | None:
    if value is None or value == "":
        return None
    return float(value)


def _floats(item: Dataset, keyword: str) -> NDArray[np.float64] | None:
    value = item.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (bytes, bytearray)):  # FL/FD multi-values read as raw bytes in some files
        return np.frombuffer(value, dtype="<f4" if len(value) % 8 else "<f8").astype(float)
    try:
        return np.asarray(list(value) if not isinstance(value, (int, float)) else [value], dtype=float)
    except TypeError:
        return np.asarray([value], dtype=float)


def _enum(cls: type[enum.Enum], value: Any, ctx: _Ctx, where: str, keyword: str) -> Any:
    text = str(value).strip().upper()
    try:
        return cls(text)
    except ValueError as exc:
        allowed = ", ".join(str(m.value) for m in cls)
        raise ctx.error(where, f"{describe_tag(keyword)} is {value!r}, expected one of {allowed}") from exc


def _patient_positions(ds: Dataset, ctx: _Ctx) -> dict[int, PatientPosition]:
    out: dict[int, PatientPosition] = {}
    for n, item in enumerate(ds.get("PatientSetupSequence", [])):
        code = get_tag(item, "PatientPosition")
        if code is None:
            continue
        try:
            pos = PatientPosition.from_dicom(str(code))
        except ParameterError as exc:
            raise ctx.error(f"Patient Setup item {n + 1}", str(exc)) from exc
        out[int(get_tag(item, "PatientSetupNumber", n + 1))] = pos
    return out


def _fraction_groups(ds: Dataset, ctx: _Ctx) -> tuple[FractionGroup, ...]:
    groups = []
    for n, item in enumerate(ds.get("FractionGroupSequence", [])):
        refs = []
        for rb in item.get("ReferencedBeamSequence", []):
            num = get_tag(rb, "ReferencedBeamNumber")
            if num is None:
                raise ctx.error(f"fraction group {n + 1}", f"missing {describe_tag('ReferencedBeamNumber')}")
            point = _floats(rb, "BeamDoseSpecificationPoint")
            refs.append(ReferencedBeam(
                int(num),
                _float(get_tag(rb, "BeamMeterset")),
                _float(get_tag(rb, "BeamDose")),
                (float(point[0]), float(point[1]), float(point[2])) if point is not None and point.size == 3
                else None,
            ))
        fp = get_tag(item, "NumberOfFractionsPlanned")
        groups.append(FractionGroup(int(get_tag(item, "FractionGroupNumber", n + 1)),
                                    None if fp is None else int(fp), tuple(refs)))
    return tuple(groups)


def _devices(beam: Dataset, ion: bool, ctx: _Ctx, where: str) -> tuple[BeamLimitingDevice, ...]:
    key = "IonBeamLimitingDeviceSequence" if ion else "BeamLimitingDeviceSequence"
    out = []
    for item in beam.get(key, []):
        t = _enum(BeamLimitingDeviceType, get_tag(item, "RTBeamLimitingDeviceType", ""), ctx, where,
                  "RTBeamLimitingDeviceType")
        pairs = int(get_tag(item, "NumberOfLeafJawPairs", 1))
        bounds = _floats(item, "LeafPositionBoundaries")
        if bounds is not None and bounds.size != pairs + 1:
            raise ctx.error(where, f"{describe_tag('LeafPositionBoundaries')} of {t.value} has {bounds.size} "
                                   f"values, expected NumberOfLeafJawPairs + 1 = {pairs + 1}")
        out.append(BeamLimitingDevice(
            t, pairs, None if bounds is None else _ro(bounds),
            _float(get_tag(item, "SourceToBeamLimitingDeviceDistance")),
            _float(get_tag(item, "IsocenterToBeamLimitingDeviceDistance")),
        ))
    return tuple(out)


def _blocks(beam: Dataset, ion: bool, ctx: _Ctx, where: str) -> tuple[Block, ...]:
    key = "IonBlockSequence" if ion else "BlockSequence"
    out: list[Block] = []
    for n, item in enumerate(beam.get(key, [])):
        w = f"{where}, block {n + 1}"
        btype = _enum(BlockType, get_tag(item, "BlockType", ""), ctx, w, "BlockType")
        data = _floats(item, "BlockData")
        if data is None or data.size % 2:
            raise ctx.error(w, f"{describe_tag('BlockData')} must hold (x, y) pairs, got "
                               f"{0 if data is None else data.size} values")
        declared = get_tag(item, "BlockNumberOfPoints")
        if declared is not None and int(declared) != data.size // 2:
            raise ctx.error(w, f"{describe_tag('BlockNumberOfPoints')} is {declared} but "
                               f"{describe_tag('BlockData')} holds {data.size // 2} points")
        cls = IonBlock if ion else Block
        out.append(cls(
            number=int(get_tag(item, "BlockNumber", n + 1)),
            name=str(get_tag(item, "BlockName", "")),
            block_type=btype,
            divergent=str(get_tag(item, "BlockDivergence", "")).strip().upper() == "PRESENT",
            mounting_position=str(get_tag(item, "BlockMountingPosition", "")).strip(),
            thickness_mm=_float(get_tag(item, "BlockThickness")),
            material=str(get_tag(item, "MaterialID", "")).strip(),
            points_mm=_ro(data.reshape(-1, 2).copy()),
            tray_id=str(get_tag(item, "BlockTrayID", "")).strip(),
            isocenter_to_block_tray_mm=_float(get_tag(item, "IsocenterToBlockTrayDistance")),
            source_to_block_tray_mm=_float(get_tag(item, "SourceToBlockTrayDistance")),
            transmission=_float(get_tag(item, "BlockTransmission")),
        ))
    return tuple(out)


def _compensators(beam: Dataset, ctx: _Ctx, where: str) -> tuple[RangeCompensator, ...]:
    out = []
    for n, item in enumerate(beam.get("IonRangeCompensatorSequence", [])):
        w = f"{where}, range compensator {n + 1}"
        rows = get_tag(item, "CompensatorRows")
        cols = get_tag(item, "CompensatorColumns")
        if rows is None or cols is None:
            raise ctx.error(
                w, f"missing {describe_tag('CompensatorRows')} or {describe_tag('CompensatorColumns')}"
            )
        shape = (int(rows), int(cols))
        thick = _floats(item, "CompensatorThicknessData")
        if thick is None or thick.size != shape[0] * shape[1]:
            raise ctx.error(w, f"{describe_tag('CompensatorThicknessData')} has "
                               f"{0 if thick is None else thick.size} values, expected rows × columns = "
                               f"{shape[0] * shape[1]}")
        spacing = _floats(item, "CompensatorPixelSpacing")
        position = _floats(item, "CompensatorPosition")
        if spacing is None or spacing.size != 2 or position is None or position.size != 2:
            raise ctx.error(w, f"{describe_tag('CompensatorPixelSpacing')} and "
                               f"{describe_tag('CompensatorPosition')} need 2 values each")
        dist = _floats(item, "IsocenterToCompensatorDistances")
        if dist is not None and dist.size != thick.size:
            raise ctx.error(w, f"{describe_tag('IsocenterToCompensatorDistances')} has {dist.size} values, "
                               f"expected {thick.size}")
        out.append(RangeCompensator(
            number=int(get_tag(item, "CompensatorNumber", n + 1)),
            id=str(get_tag(item, "CompensatorID", "")).strip(),
            thickness_mm=_ro(thick.reshape(shape).copy()),
            pixel_spacing_mm=(float(spacing[0]), float(spacing[1])),
            position_mm=(float(position[0]), float(position[1])),
            relative_stopping_power=_float(get_tag(item, "CompensatorRelativeStoppingPowerRatio")),
            milling_tool_diameter_mm=_float(get_tag(item, "CompensatorMillingToolDiameter")),
            isocenter_to_compensator_tray_mm=_float(get_tag(item, "IsocenterToCompensatorTrayDistance")),
            isocenter_to_compensator_distances_mm=None if dist is None else _ro(dist.reshape(shape).copy()),
            mounting_position=str(get_tag(item, "CompensatorMountingPosition", "")).strip(),
            divergent=str(get_tag(item, "CompensatorDivergence", "")).strip().upper() == "PRESENT",
            material=str(get_tag(item, "MaterialID", "")).strip(),
        ))
    return tuple(out)


def _wedges(beam: Dataset, ion: bool) -> tuple[Wedge, ...]:
    key = "IonWedgeSequence" if ion else "WedgeSequence"
    return tuple(
        Wedge(
            number=int(get_tag(item, "WedgeNumber", n + 1)),
            id=str(get_tag(item, "WedgeID", "")).strip(),
            wedge_type=str(get_tag(item, "WedgeType", "")).strip(),
            angle_deg=_float(get_tag(item, "WedgeAngle")),
            orientation_deg=_float(get_tag(item, "WedgeOrientation")),
            factor=_float(get_tag(item, "WedgeFactor")),
            source_to_wedge_tray_mm=_float(get_tag(item, "SourceToWedgeTrayDistance")),
            isocenter_to_wedge_tray_mm=_float(get_tag(item, "IsocenterToWedgeTrayDistance")),
        )
        for n, item in enumerate(beam.get(key, []))
    )


def _range_shifters(beam: Dataset) -> tuple[RangeShifter, ...]:
    return tuple(
        RangeShifter(
            number=int(get_tag(item, "RangeShifterNumber", n + 1)),
            id=str(get_tag(item, "RangeShifterID", "")).strip(),
            shifter_type=str(get_tag(item, "RangeShifterType", "")).strip(),
            material=str(get_tag(item, "MaterialID", "")).strip(),
        )
        for n, item in enumerate(beam.get("RangeShifterSequence", []))
    )


def _control_points(
    beam: Dataset, ion: bool, devices: tuple[BeamLimitingDevice, ...], meterset: float | None,
    final_weight: float, ctx: _Ctx, where: str,
) -> tuple[ControlPoint, ...]:
    key = "IonControlPointSequence" if ion else "ControlPointSequence"
    items = list(beam.get(key, []))
    declared = get_tag(beam, "NumberOfControlPoints")
    if not items:
        raise ctx.error(where, f"no control points ({describe_tag(key)} is missing or empty)")
    if declared is not None and int(declared) != len(items):
        raise ctx.error(where, f"{describe_tag('NumberOfControlPoints')} is {declared} but "
                               f"{describe_tag(key)} holds {len(items)} items (truncated file?)")
    pairs = {d.device_type: d.number_of_pairs for d in devices}
    state: dict[str, Any] = {}
    positions: dict[BeamLimitingDeviceType, NDArray[np.float64]] = {}
    out = []
    for n, cp in enumerate(items):
        w = f"{where}, control point {n}"
        for kw in ("GantryAngle", "BeamLimitingDeviceAngle", "PatientSupportAngle", "NominalBeamEnergy",
                   "GantryRotationDirection", "SnoutPosition"):
            value = get_tag(cp, kw)
            if value is not None:
                state[kw] = value
        iso = _floats(cp, "IsocenterPosition")
        if iso is not None:
            if iso.size != 3:
                raise ctx.error(w, f"{describe_tag('IsocenterPosition')} has {iso.size} values, expected 3 "
                                   "(truncated file?)")
            state["iso"] = (float(iso[0]), float(iso[1]), float(iso[2]))
        seq = "BeamLimitingDevicePositionSequence"
        for item in cp.get(seq, []):
            t = _enum(BeamLimitingDeviceType, get_tag(item, "RTBeamLimitingDeviceType", ""), ctx, w,
                      "RTBeamLimitingDeviceType")
            pos = _floats(item, "LeafJawPositions")
            expected = 2 * pairs.get(t, 1)
            if pos is None or pos.size != expected:
                raise ctx.error(w, f"{describe_tag('LeafJawPositions')} of {t.value} has "
                                   f"{0 if pos is None else pos.size} values, expected {expected}")
            positions[t] = _ro(pos)
        rs_items = cp.get("RangeShifterSettingsSequence")
        if rs_items is not None:
            state["rs"] = tuple(
                RangeShifterSetting(
                    int(get_tag(r, "ReferencedRangeShifterNumber", 0)),
                    str(get_tag(r, "RangeShifterSetting", "")).strip(),
                    _float(get_tag(r, "RangeShifterWaterEquivalentThickness")),
                    _float(get_tag(r, "IsocenterToRangeShifterDistance")),
                )
                for r in rs_items
            )
        if n == 0:
            for kw in ("GantryAngle", "BeamLimitingDeviceAngle", "PatientSupportAngle"):
                if kw not in state:
                    raise ctx.error(w, f"missing {describe_tag(kw)} (required in the first control point)")
            if "iso" not in state:
                raise ctx.error(w, f"missing {describe_tag('IsocenterPosition')} (required in the first "
                                   "control point)")
        weight = _float(get_tag(cp, "CumulativeMetersetWeight"))
        if weight is None:
            raise ctx.error(w, f"missing {describe_tag('CumulativeMetersetWeight')}")
        cp_meterset = None
        if meterset is not None and final_weight > 0:
            cp_meterset = meterset * weight / final_weight
        spots = _floats(cp, "ScanSpotPositionMap")
        spot_w = _floats(cp, "ScanSpotMetersetWeights")
        energy = state.get("NominalBeamEnergy")
        snout = state.get("SnoutPosition")
        out.append(ControlPoint(
            index=int(get_tag(cp, "ControlPointIndex", n)),
            cumulative_meterset_weight=weight,
            meterset=cp_meterset,
            gantry_deg=float(state["GantryAngle"]),
            gantry_rotation_direction=_enum(RotationDirection, state.get("GantryRotationDirection", "NONE"),
                                            ctx, w, "GantryRotationDirection"),
            collimator_deg=float(state["BeamLimitingDeviceAngle"]),
            couch_deg=float(state["PatientSupportAngle"]),
            isocenter_mm=state["iso"],
            nominal_energy=None if energy is None else float(energy),
            device_positions_mm=dict(positions),
            snout_position_mm=None if snout is None else float(snout),
            range_shifter_settings=state.get("rs", ()),
            spot_positions_mm=None if spots is None else _ro(spots.reshape(-1, 2)),
            spot_meterset_weights=None if spot_w is None else _ro(spot_w),
            source_to_surface_distance_mm=_float(get_tag(cp, "SourceToSurfaceDistance")),
        ))
    return tuple(out)


def _beam(
    item: Dataset, ion: bool, refs: dict[int, ReferencedBeam], setups: dict[int, PatientPosition],
    default_position: PatientPosition | None, ctx: _Ctx,
) -> Beam:
    number_raw = get_tag(item, "BeamNumber")
    if number_raw is None:
        raise ctx.error("beam", f"missing {describe_tag('BeamNumber')}")
    number = int(number_raw)
    name = str(get_tag(item, "BeamName", "")).strip()
    where = f"beam {number} {name!r}"
    radiation = str(get_tag(item, "RadiationType", "")).strip().upper()
    if ion:
        vsad = _floats(item, "VirtualSourceAxisDistances")
        if vsad is None or vsad.size != 2:
            raise ctx.error(where, f"{describe_tag('VirtualSourceAxisDistances')} must have 2 values (x, y), "
                                   f"got {None if vsad is None else vsad.tolist()}")
        sad = (float(vsad[0]), float(vsad[1]))
    else:
        s = _float(get_tag(item, "SourceAxisDistance"))
        if s is None:
            raise ctx.error(where, f"missing required tag {describe_tag('SourceAxisDistance')}")
        sad = (s, s)
    if any(not v > 0 for v in sad):
        raise ctx.error(where, f"source-axis distance must be > 0 mm, got {list(sad)}")
    devices = _devices(item, ion, ctx, where)
    ref = refs.get(number)
    meterset = ref.beam_meterset if ref else None
    final_weight = _float(get_tag(item, "FinalCumulativeMetersetWeight"))
    cps = _control_points(item, ion, devices, meterset, final_weight or 0.0, ctx, where)
    if final_weight is None:
        final_weight = cps[-1].cumulative_meterset_weight
    first = item.get("IonControlPointSequence" if ion else "ControlPointSequence")[0]
    unit_tag = str(get_tag(first, "NominalBeamEnergyUnit", "")).strip().upper()
    if unit_tag == "MEV_PER_NUCLEON" or unit_tag == "MEV/U":
        energy_unit = "MeV/u"
    elif unit_tag == "MV" or (not unit_tag and radiation == "PHOTON"):
        energy_unit = "MV"
    else:
        energy_unit = "MeV"
    setup = get_tag(item, "ReferencedPatientSetupNumber")
    position = setups.get(int(setup)) if setup is not None else None
    snouts = item.get("SnoutSequence", [])
    return Beam(
        number=number,
        name=name,
        radiation_type=radiation,
        treatment_delivery_type=str(get_tag(item, "TreatmentDeliveryType", "TREATMENT")).strip(),
        beam_type=_enum(BeamType, get_tag(item, "BeamType", "STATIC"), ctx, where, "BeamType"),
        primary_dosimeter_unit=str(get_tag(item, "PrimaryDosimeterUnit", "")).strip(),
        sad_mm=sad,
        nominal_energy=cps[0].nominal_energy,
        energy_unit=energy_unit,
        meterset=meterset,
        beam_dose_gy=ref.beam_dose_gy if ref else None,
        final_cumulative_meterset_weight=float(final_weight),
        devices=devices,
        control_points=cps,
        blocks=_blocks(item, ion, ctx, where),
        range_compensators=_compensators(item, ctx, where) if ion else (),
        wedges=_wedges(item, ion),
        range_shifters=_range_shifters(item) if ion else (),
        is_ion=ion,
        treatment_machine_name=str(get_tag(item, "TreatmentMachineName", "")).strip(),
        scan_mode=str(get_tag(item, "ScanMode", "")).strip(),
        snout_id=str(get_tag(snouts[0], "SnoutID", "")).strip() if len(snouts) else "",
        patient_position=position or default_position,
    )


@reader
def read_rtplan(path: str | os.PathLike[str]) -> RTPlan:
    """Read a DICOM RT Plan or RT Ion Plan.

    Parameters
    ----------
    path : path-like
        An RTPLAN file (RT Plan Storage or RT Ion Plan Storage).

    Returns
    -------
    RTPlan
        Fraction groups, beams with their devices, blocks, compensators and control points (inheritance
        resolved; see the module docstring).

    Raises
    ------
    DicomError
        Missing, unreadable or truncated file (e.g. fewer control points than Number of Control Points, an
        Isocenter Position without 3 values), Modality not RTPLAN, or a required tag missing. The message
        names the file, the beam and the tag.

    Examples
    --------
    >>> from pydicom.data import get_testdata_file
    >>> plan = read_rtplan(get_testdata_file("rtplan.dcm"))
    >>> b = plan.beams[0]
    >>> b.name, b.sad_mm, round(b.meterset, 2), b.control_points[1].gantry_deg
    ('Field 1', (1000.0, 1000.0), 116.0, 0.0)
    """
    p = Path(path)
    ds = read_dataset(p, modality="RTPLAN")
    ctx = _Ctx(p)
    try:
        return _parse(ds, ctx)
    except IntrepidError:
        raise
    except Exception as exc:  # pydicom raises assorted errors on truncated nested data
        raise DicomError(f"{p}: truncated or corrupt RT Plan ({type(exc).__name__}: {exc})") from exc


def _parse(ds: Dataset, ctx: _Ctx) -> RTPlan:
    ion = "IonBeamSequence" in ds
    beam_items = list(ds.get("IonBeamSequence" if ion else "BeamSequence", []))
    groups = _fraction_groups(ds, ctx)
    refs: dict[int, ReferencedBeam] = {}
    for g in groups:
        for rb in g.referenced_beams:
            refs.setdefault(rb.beam_number, rb)
    setups = _patient_positions(ds, ctx)
    default_position = next(iter(setups.values()), None)
    beams = tuple(_beam(item, ion, refs, setups, default_position, ctx) for item in beam_items)
    if not beams:
        _log.warning("%s: the plan has no beams", ctx.path)
    for_uid = get_tag(ds, "FrameOfReferenceUID")
    return RTPlan(
        label=str(get_tag(ds, "RTPlanLabel", "")).strip(),
        name=str(get_tag(ds, "RTPlanName", "")).strip(),
        sop_instance_uid=str(get_tag(ds, "SOPInstanceUID", "")),
        frame_of_reference_uid=str(for_uid) if for_uid else None,
        patient_position=default_position,
        fraction_groups=groups,
        beams=beams,
        source=str(ctx.path),
    )
