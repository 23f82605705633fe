"""EPID image files -> portal dose files with a loaded model (DICOM RT Image, optionally ``.npz``).

One output per input, named after the input's file stem (``OUT/<stem>.dcm``, ``OUT/<stem>.npz``); a batch
reuses the loaded model, and images of one shape go through the network together. The output RT Image keeps
the input's detector geometry (pixel spacing, RT Image Position, SID, SAD, angles, meterset) and joins its
Frame of Reference and Study; its pixel data are portal dose in Gy (Rescale Type ``GY``). Files are written
atomically.

Models trained on signal per MU (:mod:`intrepid.transit._model`) first convert every input (vendor, pixel
units, MU, SID, acquisition mode read from the file) and refuse, before anything is written, an image they
cannot convert (one line naming the file and the reason: uncalibrated image, negative signal, unknown units,
no MU, SID outside the training range). The ``.npz`` then also holds ``uncertainty_gy`` (the ensemble
members' standard deviation, Gy, same grid) and every output lists its ``ood_reasons``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from intrepid.errors import ModelError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn import Ensemble
    from intrepid.transit._model import TransitModel

__all__ = [
    "PredictionOutput",
    "load_predictor",
    "load_transit_model",
    "predict_files",
    "resolve_model_path",
]

_log = logging.getLogger(__name__)


def resolve_model_path(path: str | os.PathLike[str] | None) -> Path:
    """Model folder of ``path``: a model folder (``model.json``), a run folder (``ensemble/model.json``), a
    ``model.json`` file, or None for the shipped default model.

    Raises
    ------
    ModelError
        No model found at ``path``.
    """
    from intrepid.transit._default_model import default_model_path

    if path is None:
        return default_model_path()
    p = Path(path)
    if p.is_file() and p.name == "model.json":
        return p.parent
    for cand in (p, p / "ensemble"):
        if (cand / "model.json").is_file():
            return cand
    raise ModelError(
        f"{p}: no model here (expected model.json + model.safetensors in it or in {p / 'ensemble'})"
    )


def load_predictor(path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> Ensemble:
    """Load the ensemble at ``path`` (model or run folder; None: the shipped default model)."""
    from intrepid.learn import load_model

    return load_model(resolve_model_path(path), device=device)


def load_transit_model(path: str | os.PathLike[str] | None = None, *, device: str = "cpu") -> TransitModel:
    """Load the ensemble at ``path`` (None: the shipped default) as a :class:`TransitModel` (per-MU
    conversion, training ranges, member spread; a model without ranges is wrapped as legacy)."""
    import json

    from intrepid.transit._model import KERNEL_MODEL_KIND, TransitModel, load_kernel_model

    folder = resolve_model_path(path)
    try:
        doc = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder / 'model.json'}: cannot read the model description: {exc}") from exc
    if isinstance(doc, dict) and doc.get("kind") == KERNEL_MODEL_KIND:
        return load_kernel_model(folder, doc)
    return TransitModel.from_ensemble(load_predictor(folder, device=device), str(folder))


def _write_npz(path: Path, dose: Any, uncertainty: Any) -> Path:
    from intrepid.dicom._common import atomic_write

    g = dose.grid
    extra: dict[str, Any] = (
        {} if uncertainty is None else {"uncertainty_gy": np.asarray(uncertainty.array, dtype=np.float32)}
    )

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(
                fh,
                array=np.asarray(dose.array),
                origin_mm=np.asarray(g.origin_mm),
                spacing_mm=np.asarray(g.spacing_mm),
                direction=g.direction_matrix,
                units=np.asarray(dose.units),
                quantity=np.asarray(dose.quantity.value),
                frame_of_reference_uid=np.asarray(dose.frame_of_reference_uid or ""),
                **extra,
            )

    return atomic_write(path, write)


@dataclass(frozen=True)
class PredictionOutput:
    """What :func:`predict_files` wrote for one input.

    Attributes
    ----------
    source : Path
        The EPID file read.
    rtimage : Path
        The portal-dose RT Image written.
    npz : Path or None
        The ``.npz`` written (when asked).
    max_dose_gy : float
        Maximum predicted portal dose (Gy).
    seconds : float
        Network time for this image (its share of the batch), s.
    central_dose_gy : float
        Mean predicted dose (Gy) over the central 5 x 5 mm² of the image.
    max_uncertainty_gy : float or None
        Maximum of the members' standard deviation (Gy); None without an ensemble spread.
    ood_reasons : tuple of str
        Out-of-distribution flags (empty: inside the training ranges).
    input : dict or None
        What was read (vendor, units, conversion, MU, SID, acquisition mode, signal level, field size).
    """

    source: Path
    rtimage: Path
    npz: Path | None
    max_dose_gy: float
    seconds: float
    central_dose_gy: float = float("nan")
    max_uncertainty_gy: float | None = None
    ood_reasons: tuple[str, ...] = ()
    input: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "source": str(self.source),
            "rtimage": str(self.rtimage),
            "npz": None if self.npz is None else str(self.npz),
            "max_dose_gy": self.max_dose_gy,
            "central_dose_gy": self.central_dose_gy,
            "max_uncertainty_gy": self.max_uncertainty_gy,
            "ood": bool(self.ood_reasons),
            "ood_reasons": list(self.ood_reasons),
            "input": self.input,
            "seconds": self.seconds,
        }


def _central(arr: Any, spacing_mm: tuple[float, float]) -> float:
    r, c = arr.shape
    hr = max(1, round(2.5 / spacing_mm[0]))
    hc = max(1, round(2.5 / spacing_mm[1]))
    return float(np.mean(arr[r // 2 - hr : r // 2 + hr, c // 2 - hc : c // 2 + hc]))


def predict_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    model: Any = None,
    npz: bool = False,
    overwrite: bool = True,
    mu: float | None = None,
) -> list[PredictionOutput]:
    """Predict the portal dose of EPID RT Image files and write one RT Image (and ``.npz``) per input.

    Parameters
    ----------
    paths : sequence of path-like
        EPID RT Image files (any vendor :func:`intrepid.dicom.read_rtimage` reads).
    out_dir : path-like
        Output folder (created).
    model : TransitModel, Ensemble, path-like or None
        A loaded model, a model / run folder, or None for the shipped default model.
    npz : bool
        Also write ``<stem>.npz`` (array + grid as :func:`intrepid.dicom.write_npz`, plus ``uncertainty_gy``
        for an ensemble trained per MU).
    overwrite : bool
        Replace existing outputs (default True); False raises instead.
    mu : float, optional
        Monitor units for every input, overriding Meterset Exposure (3002,0032).

    Returns
    -------
    list of PredictionOutput
        In the order of ``paths``.

    Raises
    ------
    InputRefused
        An input the model cannot convert (uncalibrated, negative signal, unknown units, no MU, SID far
        outside the training range); nothing is written.
    ParameterError
        No inputs, two inputs with the same file stem, an existing output with ``overwrite=False``.
    DicomError
        An input that is not a readable RT Image.

    Examples
    --------
    >>> outs = predict_files(["epid/a.dcm", "epid/b.dcm"], "pd")  # doctest: +SKIP
    >>> outs[0].rtimage  # doctest: +SKIP
    PosixPath('pd/a.dcm')
    """
    from intrepid.dicom import Vendor, read_rtimage, write_rtimage
    from intrepid.geometry import Quantity, Volume
    from intrepid.transit._model import TransitModel
    from intrepid.transit._signal import InputRefused

    files = [Path(p) for p in paths]
    if not files:
        raise ParameterError("paths must name at least one EPID file, got none")
    stems: dict[str, Path] = {}
    for f in files:
        if f.stem in stems:
            raise ParameterError(
                f"two inputs share the file stem {f.stem!r} ({stems[f.stem]} and {f}); "
                "outputs are named after the stem"
            )
        stems[f.stem] = f
    out = Path(out_dir)
    if not overwrite:
        for f in files:
            if (out / f"{f.stem}.dcm").exists():
                raise ParameterError(f"{out / (f.stem + '.dcm')} exists; pass overwrite=True to replace it")
    if isinstance(model, TransitModel):
        tm = model
    elif hasattr(model, "predict_volumes"):
        tm = TransitModel.from_ensemble(model)
    else:
        tm = load_transit_model(model)
    images, inputs = [], []
    for f in files:
        rt = read_rtimage(f)
        if rt.image.quantity is Quantity.PORTAL_DOSE:
            raise InputRefused(
                f"{f}: is already a portal-dose image (Rescale Type {rt.pixel_units!r}), "
                "expected an EPID image"
            )
        meta = {**dict(rt.image.metadata), "source": str(f), "meterset": rt.meterset, "sid_mm": rt.sid_mm}
        vol = Volume(
            np.asarray(rt.image.array),
            rt.image.grid,
            rt.image.quantity,
            rt.pixel_units,
            rt.frame_of_reference_uid,
            meta,
        )
        if not tm.legacy:
            tm.convert(vol, mu=mu, image_type=rt.image_type)  # refuse before anything is written
        else:
            tm.check_legacy_vendor(vol)
        images.append(rt)
        inputs.append(vol)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for f, rt, vol in zip(files, images, inputs, strict=True):
        t = time.perf_counter()
        pred = tm.predict_full(vol, mu=mu, image_type=rt.image_type, uncertainty=True)
        seconds = time.perf_counter() - t
        dose = pred.dose
        arr = np.asarray(dose.array, dtype=np.float64)
        if not np.all(np.isfinite(arr)):
            raise ModelError(f"{f}: the model predicted non-finite doses")
        origin = rt.image.grid.origin_mm
        dcm = write_rtimage(
            out / f"{f.stem}.dcm",
            arr,
            pixel_spacing_mm=rt.pixel_spacing_mm,
            sid_mm=rt.sid_mm,
            sad_mm=rt.sad_mm,
            gantry_deg=rt.gantry_deg,
            collimator_deg=rt.collimator_deg,
            couch_deg=rt.couch_deg,
            vendor=Vendor.GENERIC,
            quantity=Quantity.PORTAL_DOSE,
            units="Gy",
            image_position_mm=(float(origin[0]), float(origin[1])),
            frame_of_reference_uid=rt.frame_of_reference_uid,
            meterset=rt.meterset,
            referenced_plan_uid=rt.referenced_plan_uid,
            referenced_beam_number=rt.referenced_beam_number,
            description=f"InTrEPID portal dose from {f.name}",
        )
        npz_path = _write_npz(out / f"{f.stem}.npz", dose, pred.uncertainty) if npz else None
        unc = None if pred.uncertainty is None else float(np.max(pred.uncertainty.array))
        central = _central(arr, rt.pixel_spacing_mm)
        results.append(
            PredictionOutput(
                f,
                dcm,
                npz_path,
                float(arr.max()),
                seconds,
                central,
                unc,
                pred.ood_reasons,
                None if pred.input is None else pred.input.to_dict(),
            )
        )
        for reason in pred.ood_reasons:
            _log.warning("%s: out of the training distribution: %s", f, reason)
        _log.info("%s -> %s (max %.4g Gy)", f, dcm, float(arr.max()))
    return results
