"""The default InTrEPID-2D model shipped inside the package, and its physics baseline.

``intrepid/transit/models/default/`` holds ``model.json`` + ``model.safetensors`` (a hybrid ensemble of
8-filter U-Nets trained on the simulator's paper composition: each network predicts a smooth correction to
the kernel baseline, whose parameters, the mean of the per-fold fits, are stored in ``model.json``; see
:class:`intrepid.learn.Ensemble`), ``training_manifest.json`` (data, seeds, folds, losses,
timings) and ``baseline.json`` (the kernel baseline fitted on the same training pairs). The command that
reproduces them is ``python3 tools/train_default_model.py`` (see that script and the training manifest).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from intrepid.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn import Ensemble
    from intrepid.physics._kernel_baseline import KernelBaseline

__all__ = [
    "default_model_path",
    "default_training_manifest",
    "load_default_baseline",
    "load_default_model",
]

_log = logging.getLogger(__name__)

_FILES = ("model.json", "model.safetensors")


def default_model_path() -> Path:
    """Folder of the shipped default model (located with :mod:`importlib.resources`).

    Raises
    ------
    ModelError
        The package was installed without its model files.
    """
    from importlib.resources import files

    folder = Path(str(files("intrepid.transit").joinpath("models", "default")))
    missing = [f for f in _FILES if not (folder / f).is_file()]
    if missing == ["model.safetensors"] and (folder / "baseline.json").is_file():
        missing = []  # a kernel-baseline model (no network): model.json + baseline.json
    if missing:
        raise ModelError(
            f"the default model is missing from the installed package ({folder}: no {', '.join(missing)}); "
            "reinstall intrepid or pass --model PATH"
        )
    return folder


def load_default_model(*, device: str = "cpu") -> Ensemble:
    """The shipped ensemble, ready to :meth:`~intrepid.learn.Ensemble.predict`.

    Examples
    --------
    >>> model = load_default_model()  # doctest: +SKIP
    >>> dose = model.predict(read_rtimage("epid.dcm").image)  # doctest: +SKIP
    """
    from intrepid.learn import load_model

    return load_model(default_model_path(), device=device)


def load_default_baseline() -> KernelBaseline:
    """The kernel baseline fitted on the default model's training pairs (``baseline.json``)."""
    from intrepid.physics._kernel_baseline import load_baseline

    return load_baseline(default_model_path() / "baseline.json")


def default_training_manifest() -> dict[str, Any]:
    """The default model's ``training_manifest.json`` (data, seeds, folds, losses, timings, command)."""
    path = default_model_path() / "training_manifest.json"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read the training manifest: {exc}") from exc
    if not isinstance(doc, dict):
        raise ModelError(f"{path}: the training manifest must be a JSON object")
    return doc
