"""EPID image files -> portal dose files with a loaded model (DICOM RT Image, optionally ``.npz``).

One output per input, named after the input's file stem (``OUT/<stem>.dcm``, ``OUT/<stem>.npz``); a batch
reuses the loaded model, and images of one shape go through the network together. The output RT Image keeps
the input's detector geometry (pixel spacing, RT Image Position, SID, SAD, angles, meterset) and joins its
Frame of Reference and Study; its pixel data are portal dose in Gy (Rescale Type ``GY``). Files are written
atomically.
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

__all__ = ["PredictionOutput", "load_predictor", "predict_files", "resolve_model_path"]

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
    """

    source: Path
    rtimage: Path
    npz: Path | None
    max_dose_gy: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "source": str(self.source),
            "rtimage": str(self.rtimage),
            "npz": None if self.npz is None else str(self.npz),
            "max_dose_gy": self.max_dose_gy,
            "seconds": self.seconds,
        }


def predict_files(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    model: Any = None,
    npz: bool = False,
    overwrite: bool = True,
) -> list[PredictionOutput]:
    """Predict the portal dose of EPID RT Image files and write one RT Image (and ``.npz``) per input.

    Parameters
    ----------
    paths : sequence of path-like
        EPID RT Image files (any vendor :func:`intrepid.dicom.read_rtimage` reads).
    out_dir : path-like
        Output folder (created).
    model : Ensemble, path-like or None
        A loaded ensemble, a model / run folder, or None for the shipped default model.
    npz : bool
        Also write ``<stem>.npz`` (:func:`intrepid.dicom.write_npz`: array + grid).
    overwrite : bool
        Replace existing outputs (default True); False raises instead.

    Returns
    -------
    list of PredictionOutput
        In the order of ``paths``.

    Raises
    ------
    ParameterError
        No inputs, two inputs with the same file stem, an input that is a portal-dose image, an existing
        output with ``overwrite=False``.
    DicomError
        An input that is not a readable RT Image.

    Examples
    --------
    >>> outs = predict_files(["epid/a.dcm", "epid/b.dcm"], "pd")  # doctest: +SKIP
    >>> outs[0].rtimage  # doctest: +SKIP
    PosixPath('pd/a.dcm')
    """
    from intrepid.dicom import Vendor, read_rtimage, write_npz, write_rtimage
    from intrepid.geometry import Quantity

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
    ens = model if hasattr(model, "predict_volumes") else load_predictor(model)
    images = []
    for f in files:
        rt = read_rtimage(f)
        if rt.image.quantity is Quantity.PORTAL_DOSE:
            raise ParameterError(
                f"{f}: is already a portal-dose image (Rescale Type {rt.pixel_units!r}), "
                "expected an EPID image"
            )
        images.append(rt)
    t = time.perf_counter()
    doses = ens.predict_volumes([rt.image for rt in images])
    per_image = (time.perf_counter() - t) / len(images)
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for f, rt, dose in zip(files, images, doses, strict=True):
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
        npz_path = write_npz(dose, out / f"{f.stem}.npz") if npz else None
        results.append(PredictionOutput(f, dcm, npz_path, float(arr.max()), per_image))
        _log.info("%s -> %s (max %.4g Gy)", f, dcm, float(arr.max()))
    return results
