"""Simulate paired EPID / portal-dose images and write them as DICOM RT Image files with a manifest.

For every :class:`~intrepid.simulate.PairSpec` the phantom is built
(:func:`~intrepid.simulate.make_phantom`), the field made (:class:`intrepid.physics.Field`) and
:func:`intrepid.physics.simulate_transit` run at gantry 0 with the spec's MU, isocentre and seed. The EPID
image is written with the vendor's pixel encoding (Elekta iView: inverted 16-bit counts; Varian aS1000:
calibrated units through a negative Rescale Slope), the portal dose in Gy (16-bit with a positive Rescale
Slope, Image Type ``PORTAL_DOSE``); both carry the acquisition geometry (SID,
SAD, Image Plane Pixel Spacing, RT Image Position and Orientation, gantry / collimator / couch angles and the
MU) and share the phantom's Frame of Reference UID.

Layout of the output folder::

    out_dir/manifest.csv
    out_dir/epid/0000_<name>.dcm
    out_dir/portal_dose/0000_<name>.dcm

``manifest.csv`` has one row per pair with the columns :data:`MANIFEST_COLUMNS`; file paths are relative to
the manifest. Each DICOM file is written atomically and the manifest last, also atomically: a failed run
leaves no manifest (an earlier manifest in ``out_dir`` is removed first), so a manifest never names missing
files.

Physics: by default the earlier, near-linear transit model; with ``effects=`` (``--effects``) the detector and
transit effects of :mod:`intrepid.physics` are drawn per pair from its seed (stream 2; MLC leaf sequences from
stream 1), the manifest gets ``effects`` and ``effects.json`` lists every drawn value.

Determinism: the simulation seed of a pair is derived from the generation ``seed`` and the spec's ``seed``
(:func:`pair_seed`); the same inputs give byte-identical pixel data, whatever the number of worker
processes. The study and Frame of Reference UIDs are derived from the same inputs too; SOP Instance UIDs are
new per file.
"""

from __future__ import annotations

import csv
import enum
import io
import logging
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.dicom._common import atomic_write
from intrepid.errors import ParameterError
from intrepid.simulate._composition import PairSpec, field_size_cm, mlc_kind
from intrepid.simulate._phantoms import make_phantom

__all__ = [
    "MANIFEST_COLUMNS",
    "MANIFEST_NAME",
    "GenerationSettings",
    "SimulationVendor",
    "generate_pairs",
    "pair_seed",
    "read_manifest",
]

_log = logging.getLogger(__name__)

#: Name of the manifest inside the output folder.
MANIFEST_NAME = "manifest.csv"
#: Drawn effect values of every pair (index -> dict), written when ``effects`` is given.
EFFECTS_NAME = "effects.json"
#: Columns of ``manifest.csv``, in order.
MANIFEST_COLUMNS = (
    "index",
    "name",
    "epid_file",
    "portal_dose_file",
    "phantom",
    "family",
    "field",
    "field_group",
    "rotation_deg",
    "isocenter",
    "isocenter_x_mm",
    "isocenter_y_mm",
    "isocenter_z_mm",
    "mu",
    "seed",
    "split",
    "vendor",
    "gantry_deg",
    "sid_mm",
    "epid_units",
    "portal_dose_max_gy",
    "effects",
)

#: Columns that every manifest must have (the data-set contract).
REQUIRED_COLUMNS = (
    "epid_file", "portal_dose_file", "phantom", "field", "rotation_deg", "mu", "seed", "split"
)

_UID_NAMESPACE = uuid.UUID("0b7d8d0e-8d7c-4b61-9c1e-5a3f0e2b7c44")


class SimulationVendor(enum.Enum):
    """Which EPID the pairs mimic (detector model and pixel encoding)."""

    ELEKTA = "elekta"  #: Elekta iView GT: 1024 x 1024 at 0.405 mm, SID 1600 mm, inverted 16-bit counts
    VARIAN = "varian"  #: Varian aS1000: 768 x 1024 at 0.392 mm, calibrated units (negative Rescale Slope)


@dataclass(frozen=True)
class GenerationSettings:
    """Settings shared by every pair of a run (picklable, sent to the worker processes).

    Parameters
    ----------
    vendor : SimulationVendor
        Detector model and encoding.
    seed : int
        Generation seed, mixed with each spec's seed (:func:`pair_seed`).
    phantom_spacing_mm : float
        Voxel size of the phantoms in mm.
    detector_pixels : int or None
        None: the vendor's detector. An integer N: an N x N detector of the same physical size (coarser
        pixels), for quick tests and previews.
    effects : intrepid.physics.EffectFlags or None
        Detector and transit effects drawn per pair (:func:`intrepid.physics.sample_effects`); None keeps
        the earlier physics.
    panel : intrepid.physics.DetectorEffects or None
        Panel-level values shared by every pair (``generate_pairs(..., panel="dataset")``).
    """

    vendor: SimulationVendor = SimulationVendor.ELEKTA
    seed: int = 0
    phantom_spacing_mm: float = 2.5
    detector_pixels: int | None = None
    effects: Any = None  #: EffectFlags or None (the earlier, near-linear physics)
    panel: Any = None  #: DetectorEffects shared by every pair (panel="dataset"), or None (drawn per pair)


def pair_seed(generation_seed: int, spec_seed: int) -> int:
    """Simulation seed of one pair: a 32-bit integer mixed from the run seed and the spec seed.

    Uses :class:`numpy.random.SeedSequence` so that nearby seeds give independent streams.
    """
    return int(np.random.SeedSequence([int(generation_seed), int(spec_seed)]).generate_state(1)[0])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-")[:80] or "pair"


def _field(field_name: str, seed: int = 0) -> Any:
    from intrepid.physics import Field, generate_mlc_field

    x, y, ellipse = field_size_cm(field_name)
    if ellipse:
        return Field.ellipse(x, y)
    kind = mlc_kind(field_name)
    if kind is not None:
        # the leaf sequence is drawn from the pair's seed (stream 1), so the same pair gets the same plan
        return generate_mlc_field(kind, x, y, np.random.default_rng([int(seed), 1]))
    return Field.square(x) if x == y else Field.rectangle(x, y)


def _effects(settings: GenerationSettings, field: Any, seed: int) -> Any:
    """The drawn effects of one pair (stream 2 of its seed), or None for the earlier physics."""
    from intrepid.physics import DetectorEffects, EffectFlags, Field, sample_effects

    if settings.effects is None:
        # MLC fluences need the effects pipeline: with every effect off it is the plain physics
        return None if isinstance(field, Field) else DetectorEffects.nominal(EffectFlags.none())
    return sample_effects(settings.effects, settings.vendor.value, np.random.default_rng([int(seed), 2]),
                          panel=settings.panel)


def _flags_label(settings: GenerationSettings) -> str:
    from intrepid.physics import EFFECT_NAMES

    if settings.effects is None:
        return "legacy"
    on = settings.effects.enabled()
    if len(on) == len(EFFECT_NAMES):
        return "all"
    return "+".join(on) if on else "none"


def _detector(settings: GenerationSettings) -> Any:
    from intrepid.physics import DetectorModel

    det = (
        DetectorModel.elekta_iview() if settings.vendor is SimulationVendor.ELEKTA
        else DetectorModel.varian_as1000()
    )
    if settings.detector_pixels is not None:
        # same panel size, coarser pixels: N columns, rows scaled to keep the aspect ratio
        n = settings.detector_pixels
        rows = max(4, 4 * round(det.rows * n / det.columns / 4))  # the model needs multiples of 4
        det = replace(det, rows=rows, columns=n, pixel_mm=det.pixel_mm * det.columns / n)
    return det


def _study_uid(settings: GenerationSettings) -> str:
    key = f"study|{settings.vendor.value}|{settings.seed}"
    return "2.25." + str(uuid.uuid5(_UID_NAMESPACE, key).int)


def _simulate_one(index: int, spec: PairSpec, settings: GenerationSettings, out_dir: str) -> dict[str, Any]:
    """Simulate and write one pair; returns its manifest row."""
    from intrepid.dicom import Vendor, write_rtimage
    from intrepid.geometry import Quantity
    from intrepid.physics import simulate_transit

    phantom = make_phantom(spec.family, spec.parameters(), spacing_mm=settings.phantom_spacing_mm,
                           rotation_deg=spec.rotation_deg, isocenter=spec.isocenter)
    seed = pair_seed(settings.seed, spec.seed)
    gantry_deg = 0.0
    field = _field(spec.field, seed)
    effects = _effects(settings, field, seed)
    images = simulate_transit(
        phantom.ct, field, detector=_detector(settings), gantry_deg=gantry_deg,
        isocenter_mm=phantom.isocenter_mm, mu=spec.mu, seed=seed, effects=effects,
    )
    epid, dose = images.epid, images.portal_dose
    spacing = (epid.grid.spacing_mm[1], epid.grid.spacing_mm[0])  # (row, column) at the detector
    sid_mm = float(images.metadata.get("sid_mm", 1600.0))
    sad_mm = float(images.metadata.get("sad_mm", 1000.0))
    vendor = Vendor.ELEKTA if settings.vendor is SimulationVendor.ELEKTA else Vendor.VARIAN
    stem = f"{index:04d}_{_safe(spec.name)}.dcm"
    epid_rel = f"epid/{stem}"
    dose_rel = f"portal_dose/{stem}"
    common: dict[str, Any] = dict(
        pixel_spacing_mm=spacing, sid_mm=sid_mm, sad_mm=sad_mm, gantry_deg=gantry_deg, collimator_deg=0.0,
        couch_deg=0.0, image_position_mm=None,  # the image is centred on the beam axis
        patient_id=_safe(spec.phantom)[:64], patient_name=f"Phantom^{_safe(spec.phantom)[:50]}",
        study_instance_uid=_study_uid(settings), frame_of_reference_uid=phantom.ct.frame_of_reference_uid,
        meterset=spec.mu, description=f"{spec.name} {spec.field} {spec.mu:g} MU",
    )
    if vendor is Vendor.ELEKTA:
        # iView stores inverted counts; hand the writer the counts whose inversion is the detector's raw
        # image, so the stored pixels are exactly the detector model's encoding
        epid_units = None
        epid_signal = 65535.0 - np.asarray(images.raw, dtype=np.float64)
    else:
        epid_units = epid.units or "CU"
        epid_signal = np.asarray(epid.array, dtype=np.float64)
    write_rtimage(Path(out_dir) / epid_rel, epid_signal, vendor=vendor, quantity=Quantity.EPID_SIGNAL,
                  units=epid_units, **common)
    write_rtimage(Path(out_dir) / dose_rel, dose.array, vendor=Vendor.GENERIC, quantity=Quantity.PORTAL_DOSE,
                  units="Gy", **common)
    iso = phantom.isocenter_mm
    return {
        "index": index,
        "name": spec.name,
        "epid_file": epid_rel,
        "portal_dose_file": dose_rel,
        "phantom": spec.phantom,
        "family": spec.family.value,
        "field": spec.field,
        "field_group": spec.field_group,
        "rotation_deg": spec.rotation_deg,
        "isocenter": spec.isocenter.value,
        "isocenter_x_mm": f"{iso[0]:.3f}",
        "isocenter_y_mm": f"{iso[1]:.3f}",
        "isocenter_z_mm": f"{iso[2]:.3f}",
        "mu": f"{spec.mu:g}",
        "seed": seed,
        "split": spec.split.value,
        "vendor": settings.vendor.value,
        "gantry_deg": f"{gantry_deg:g}",
        "sid_mm": f"{sid_mm:g}",
        "epid_units": "raw" if epid_units is None else epid_units,
        "portal_dose_max_gy": f"{float(np.max(dose.array)):.6g}",
        "effects": _flags_label(settings),
        "_effect_values": images.metadata.get("effects"),
    }


def _as_vendor(vendor: SimulationVendor | str) -> SimulationVendor:
    if isinstance(vendor, SimulationVendor):
        return vendor
    try:
        return SimulationVendor(str(vendor).lower())
    except ValueError:
        raise ParameterError(f"vendor must be one of elekta, varian, got {vendor!r}") from None


def generate_pairs(
    specs: Sequence[PairSpec],
    out_dir: str | os.PathLike[str],
    *,
    vendor: SimulationVendor | str = SimulationVendor.ELEKTA,
    seed: int = 0,
    progress: bool = True,
    workers: int = 1,
    phantom_spacing_mm: float = 2.5,
    detector_pixels: int | None = None,
    effects: Any = None,
    panel: str = "image",
    ray: Any = None,
) -> Path:
    """Simulate the pairs of ``specs`` into ``out_dir`` and write ``manifest.csv`` last.

    Parameters
    ----------
    specs : sequence of PairSpec
        What to simulate (:func:`~intrepid.simulate.paper_composition`,
        :func:`~intrepid.simulate.random_composition`).
    out_dir : path-like
        Output folder, created when missing. Existing files of the same names are replaced; an existing
        manifest is removed before the first pair is simulated.
    vendor : SimulationVendor or {"elekta", "varian"}
        Detector model and EPID pixel encoding.
    seed : int
        Generation seed (>= 0), mixed with each spec's seed.
    progress : bool
        Show a tqdm progress bar (on stderr).
    workers : int
        Worker processes (1 = in this process). Results do not depend on it.
    phantom_spacing_mm : float
        Phantom voxel size in mm.
    detector_pixels : int, optional
        Replace the vendor's detector by an N x N one of the same physical size (previews, tests).
    effects : intrepid.physics.EffectFlags or str, optional
        Detector and transit effects, drawn per pair within their published ranges
        (:func:`intrepid.physics.sample_effects`): an :class:`~intrepid.physics.EffectFlags`, or text for
        :meth:`~intrepid.physics.EffectFlags.parse` (``"all"``, ``"none"``, ``"all-glare"``,
        ``"glare,couch"``). None (default) keeps the earlier near-linear physics. The drawn values of every
        pair are written to ``effects.json`` (index -> values) beside the manifest.
    panel : {"image", "dataset"}
        ``"image"`` (default): every effect value is drawn per pair, so the set spans the published spread
        between panels; ``"dataset"``: the panel, beam and scatter-physics values
        (:data:`intrepid.physics.PANEL_FIELDS`) are drawn once from ``seed`` and shared by every pair (one
        panel in one clinic), the per-acquisition ones per pair.
    ray : intrepid.learn.RayOptions, optional
        Simulate the pairs as Ray tasks (one task per pair; ``workers`` is then ignored). ``out_dir`` must be
        on a file system every Ray node sees. Results do not depend on it.

    Returns
    -------
    Path
        The manifest.

    Raises
    ------
    ParameterError
        Empty ``specs``, unknown vendor, negative seed, ``workers`` < 1, bad ``detector_pixels``.
    """
    spec_list = list(specs)
    if not spec_list:
        raise ParameterError("specs must hold at least one PairSpec, got none")
    if not all(isinstance(s, PairSpec) for s in spec_list):
        raise ParameterError("specs must be PairSpec objects")
    v = _as_vendor(vendor)
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ParameterError(f"seed must be an integer >= 0, got {seed!r}")
    if int(workers) != workers or workers < 1:
        raise ParameterError(f"workers must be an integer >= 1, got {workers!r}")
    if detector_pixels is not None and (
        int(detector_pixels) != detector_pixels or not 16 <= detector_pixels <= 4096 or detector_pixels % 4
    ):
        raise ParameterError(
            f"detector_pixels must be a multiple of 4 in [16, 4096], got {detector_pixels!r}"
        )
    if not (0.5 <= float(phantom_spacing_mm) <= 10.0):
        raise ParameterError(f"phantom_spacing_mm must be in [0.5, 10] mm, got {phantom_spacing_mm!r}")
    if panel not in ("image", "dataset"):
        raise ParameterError(f"panel must be 'image' or 'dataset', got {panel!r}")
    flags: Any = None
    shared: Any = None
    if effects is not None:
        from intrepid.physics import EffectFlags, sample_effects

        flags = effects if isinstance(effects, EffectFlags) else EffectFlags.parse(str(effects))
        if panel == "dataset":
            shared = sample_effects(flags, v.value, np.random.default_rng([int(seed), 3]))
    settings = GenerationSettings(v, int(seed), float(phantom_spacing_mm),
                                  None if detector_pixels is None else int(detector_pixels), flags, shared)
    out = Path(out_dir)
    (out / "epid").mkdir(parents=True, exist_ok=True)
    (out / "portal_dose").mkdir(parents=True, exist_ok=True)
    manifest = out / MANIFEST_NAME
    manifest.unlink(missing_ok=True)

    from tqdm import tqdm

    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(spec_list), desc="simulating pairs", unit="pair", disable=not progress)
    try:
        rows_in = (
            _run(spec_list, settings, str(out), int(workers))
            if ray is None
            else _run_on_ray(spec_list, settings, str(out), ray, progress)
        )
        for row in rows_in:
            rows.append(row)
            bar.update(1)
    finally:
        bar.close()
    rows.sort(key=lambda r: int(r["index"]))
    values = {str(r["index"]): r.pop("_effect_values", None) for r in rows}
    (out / EFFECTS_NAME).unlink(missing_ok=True)
    if flags is not None:
        import json

        def write_effects(tmp: Path) -> None:
            tmp.write_text(json.dumps(values, indent=1, sort_keys=True), encoding="utf-8")

        atomic_write(out / EFFECTS_NAME, write_effects)

    def write(tmp: Path) -> None:
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        tmp.write_text(buf.getvalue(), encoding="utf-8")

    atomic_write(manifest, write)
    _log.info("wrote %d pairs and %s", len(rows), manifest)
    return manifest


def _run(specs: list[PairSpec], settings: GenerationSettings, out_dir: str, workers: int
         ) -> Iterator[dict[str, Any]]:
    if workers == 1 or len(specs) == 1:
        for i, spec in enumerate(specs):
            yield _simulate_one(i, spec, settings, out_dir)
        return
    # "spawn": the physics uses numba / OpenMP threads, which a fork() would copy in an unsafe state
    import multiprocessing

    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = [pool.submit(_simulate_one, i, spec, settings, out_dir) for i, spec in enumerate(specs)]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            for fut in futures:
                fut.cancel()
            raise


def _simulate_item(item: tuple[int, PairSpec], shared: tuple[GenerationSettings, str]) -> dict[str, Any]:
    """One Ray task of :func:`generate_pairs`."""
    settings, out_dir = shared
    return _simulate_one(item[0], item[1], settings, out_dir)


def _run_on_ray(
    specs: list[PairSpec], settings: GenerationSettings, out_dir: str, options: Any, progress: bool
) -> list[dict[str, Any]]:
    from intrepid.learn import ray_map

    return ray_map(
        _simulate_item,
        list(enumerate(specs)),
        options,
        shared=(settings, out_dir),
        describe=lambda item: f"pair {item[0]} ({item[1].phantom}, {item[1].field})",
        progress=False,
    )


def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """Rows of a ``manifest.csv`` written by :func:`generate_pairs` (all values as strings).

    Raises
    ------
    ParameterError
        The file lacks one of the required columns ``epid_file``, ``portal_dose_file``, ``phantom``,
        ``field``, ``rotation_deg``, ``mu``, ``seed``, ``split``.
    """
    p = Path(path)
    with p.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        required = REQUIRED_COLUMNS
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise ParameterError(f"{p}: manifest lacks the column(s) {', '.join(missing)}")
        return list(reader)
