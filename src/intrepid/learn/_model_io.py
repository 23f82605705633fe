"""Safe model files: weights in safetensors plus a JSON description; anything else is refused.

A model is a folder (or a file pair) holding::

    model.json           what the model is (see below), human-readable
    model.safetensors    the weights of every member, no code (https://github.com/huggingface/safetensors)

``model.json`` keys: ``format`` (``"intrepid-model"``), ``format_version`` (1), ``kind`` (``"unet-ensemble"``;
a single network is an ensemble of one), ``architecture`` (:meth:`UNetConfig.to_dict`), ``preprocessing``
(:meth:`PreprocessConfig.to_dict`), ``members`` (one object per member with its tensor ``prefix`` and what
is known of its training: configuration, repeat, fold, validation loss and pass rate), ``training`` (data
summary, protocol, seeds), ``software`` (intrepid, torch and safetensors versions), ``weights_file`` and
``weights_sha256`` (checked on loading), ``created`` (UTC, ISO 8601).

Pickle-based files (``torch.save`` archives, ``.pt``, ``.pth``, ``.pkl``, ``.ckpt``) can run arbitrary code
when loaded: :func:`load_model` refuses them with a :class:`~intrepid.errors.ModelError` and never calls
``torch.load``. The weights are read with ``safetensors.numpy``, which parses a JSON header and raw arrays.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from intrepid.dicom._common import atomic_write
from intrepid.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._ensemble import Ensemble

__all__ = [
    "ARCHITECTURE_RANGES",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "JSON_NAME",
    "WEIGHTS_NAME",
    "describe_model",
    "load_model",
    "read_model_files",
    "write_model_files",
]

_log = logging.getLogger(__name__)

FORMAT_NAME = "intrepid-model"
FORMAT_VERSION = 1
JSON_NAME = "model.json"
WEIGHTS_NAME = "model.safetensors"
#: Suffixes of pickle-based checkpoint formats, refused by name before anything is read.
_PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".bin", ".joblib", ".tar"}
_MAX_HEADER_BYTES = 100_000_000
#: Largest ``model.json`` read (bytes) and deepest nesting of its objects / lists: the shipped description is
#: ~10 kB and 5 levels deep.
MAX_JSON_BYTES = 10_000_000
MAX_JSON_DEPTH = 64
#: Ranges of the architecture keys (inclusive). The published networks use depth 5, 8-16 initial filters and
#: 128 maximum (Kalantzis et al. 2021 style U-Nets); the bounds keep a hostile description from asking for
#: terabytes when the network is built.
ARCHITECTURE_RANGES: dict[str, tuple[int, int]] = {
    "depth": (1, 8),
    "initial_filters": (1, 256),
    "max_filters": (1, 2048),
    "convs_per_level": (1, 8),
    "kernel_size": (1, 9),
    "in_channels": (1, 16),
    "out_channels": (1, 16),
}
#: Largest working grid side (pixels) a model may declare: 1024 is the largest EPID matrix.
MAX_WORKING_SIDE = 1024
#: The tensor dtype of InTrEPID weights (what :func:`write_model_files` receives from PyTorch); batch-norm
#: step counters (``*.num_batches_tracked``, int64 scalars) are the one exception.
WEIGHTS_DTYPE = np.dtype("float32")


def _software() -> dict[str, str]:
    from intrepid import __version__

    out = {"intrepid": __version__}
    try:
        import safetensors

        out["safetensors"] = str(safetensors.__version__)
    except ImportError:  # pragma: no cover - safetensors is required to write
        pass
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = str(torch.__version__)
    out["numpy"] = np.__version__
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_model_files(
    folder: str | os.PathLike[str], tensors: dict[str, NDArray[Any]], description: dict[str, Any]
) -> Path:
    """Write ``model.safetensors`` and ``model.json`` into ``folder`` (created if missing), atomically.

    Parameters
    ----------
    folder : path-like
        Destination folder.
    tensors : dict of str to ndarray
        Every tensor of every member, keyed ``"<member prefix><parameter name>"``.
    description : dict
        JSON-ready keys ``kind``, ``architecture``, ``preprocessing``, ``members``, ``training``; the format,
        software versions, weights hash and creation time are added here.

    Returns
    -------
    Path
        The folder.
    """
    from safetensors.numpy import save_file

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    weights = out / WEIGHTS_NAME
    atomic_write(weights, lambda tmp: save_file(arrays, str(tmp), metadata={"format": FORMAT_NAME}))
    doc = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    doc.update(description)
    doc["software"] = _software()
    doc["weights_file"] = WEIGHTS_NAME
    doc["weights_sha256"] = _sha256(weights)
    doc["created"] = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    text = json.dumps(doc, indent=2, allow_nan=False, default=_json_default)
    atomic_write(out / JSON_NAME, lambda tmp: tmp.write_text(text + "\n", encoding="utf-8"))
    _log.info("wrote model files in %s", out)
    return out


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.is_dir():
        json_path = p / JSON_NAME
        if not json_path.is_file():
            raise ModelError(
                f"{p}: not a model folder (no {JSON_NAME}; a model is {JSON_NAME} + {WEIGHTS_NAME})"
            )
        return json_path, p / WEIGHTS_NAME
    if not p.exists():
        raise ModelError(f"{p}: no such model file or folder")
    suffix = p.suffix.lower()
    if suffix in _PICKLE_SUFFIXES:
        raise ModelError(
            f"{p}: refusing a {suffix} file: pickle-based checkpoints can execute code when loaded; InTrEPID "
            f"models are {JSON_NAME} + {WEIGHTS_NAME}"
        )
    if suffix == ".json":
        return p, p.parent / WEIGHTS_NAME
    if suffix == ".safetensors":
        return p.parent / JSON_NAME, p
    raise ModelError(
        f"{p}: not a model ({suffix or 'no suffix'}); expected a folder with {JSON_NAME} + {WEIGHTS_NAME}"
    )


def _check_safetensors_header(path: Path) -> None:
    """Refuse pickles and zip archives disguised as safetensors before any parser sees them."""
    with path.open("rb") as fh:
        head = fh.read(9)
    if head[:1] == b"\x80":
        raise ModelError(
            f"{path}: is a pickle, not safetensors; refusing to load it (pickles can execute code)"
        )
    if head[:2] == b"PK":
        raise ModelError(
            f"{path}: is a zip archive (torch.save format, pickle inside), not safetensors; refusing to "
            "load it"
        )
    if len(head) < 9:
        raise ModelError(f"{path}: truncated safetensors file ({len(head)} bytes)")
    (n,) = struct.unpack("<Q", head[:8])
    if n > _MAX_HEADER_BYTES or n > path.stat().st_size - 8 or head[8:9] != b"{":
        raise ModelError(f"{path}: not a safetensors file (bad header)")


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[`` / ``{`` in JSON text, outside strings (one pass, no recursion)."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _check_architecture(json_path: Path, doc: dict[str, Any]) -> None:
    arch, pre = doc["architecture"], doc["preprocessing"]
    if not isinstance(arch, dict) or not isinstance(pre, dict):
        raise ModelError(f"{json_path}: keys 'architecture' and 'preprocessing' must be objects")
    for key, (low, high) in ARCHITECTURE_RANGES.items():
        if key not in arch:
            continue
        value = arch[key]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ModelError(
                f"{json_path}: architecture key {key!r} must be an integer in [{low}, {high}], got {value!r}"
            )
    shape = pre.get("working_shape")
    if shape is not None:
        if (
            not isinstance(shape, list)
            or len(shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_WORKING_SIDE
                       for v in shape)
        ):
            raise ModelError(
                f"{json_path}: preprocessing key 'working_shape' must be two integers in "
                f"[1, {MAX_WORKING_SIDE}], got {shape!r}"
            )


def _read_json(json_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise ModelError(f"{json_path}: missing model description ({JSON_NAME} must sit beside the weights)")
    size = json_path.stat().st_size
    if size > MAX_JSON_BYTES:
        raise ModelError(f"{json_path}: {size} bytes, above the {MAX_JSON_BYTES}-byte limit of a description")
    try:
        text = json_path.read_text(encoding="utf-8")
        if _json_depth(text) > MAX_JSON_DEPTH:
            raise ModelError(f"{json_path}: JSON nested deeper than {MAX_JSON_DEPTH} levels")
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        if isinstance(exc, ModelError):
            raise
        raise ModelError(f"{json_path}: unreadable model description ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT_NAME:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ModelError(f"{json_path}: key 'format' must be {FORMAT_NAME!r}, got {got!r}")
    version = doc.get("format_version")
    if version != FORMAT_VERSION:
        raise ModelError(f"{json_path}: format_version {version!r} is not supported (this version reads 1)")
    for key in ("architecture", "preprocessing", "members"):
        if key not in doc:
            raise ModelError(f"{json_path}: model description lacks the key {key!r}")
    if not isinstance(doc["members"], list) or not doc["members"]:
        raise ModelError(f"{json_path}: key 'members' must be a non-empty list")
    for n, m in enumerate(doc["members"]):
        if not isinstance(m, dict) or not isinstance(m.get("prefix"), str):
            raise ModelError(f"{json_path}: member {n} lacks its tensor 'prefix'")
    _check_architecture(json_path, doc)
    return doc


def describe_model(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed ``model.json`` of a model (folder, ``model.json`` or ``model.safetensors``), checked.

    Needs neither PyTorch nor the weights: for reports and ``intrepid info``.

    Raises
    ------
    ModelError
        Not a model, a pickle-based file, or an invalid description.
    """
    json_path, _ = _paths(path)
    return _read_json(json_path)


def read_model_files(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Read and check a model's description and weights (NumPy arrays), without PyTorch.

    Parameters
    ----------
    path : path-like
        Model folder, its ``model.json`` or its ``model.safetensors``.

    Returns
    -------
    description : dict
        The parsed ``model.json``.
    tensors : dict of str to ndarray
        Every tensor, keyed ``"<member prefix><parameter name>"``.

    Raises
    ------
    ModelError
        Pickle-based or unknown files, a missing half of the pair, a weights file whose SHA-256 differs from
        the description's, an invalid description or safetensors file.
    """
    json_path, weights = _paths(path)
    doc = _read_json(json_path)
    name = doc.get("weights_file", WEIGHTS_NAME)
    if not isinstance(name, str) or Path(name).name != name or not name.endswith(".safetensors"):
        raise ModelError(f"{json_path}: key 'weights_file' must be a .safetensors file name, got {name!r}")
    weights = json_path.parent / name
    if not weights.is_file():
        raise ModelError(f"{weights}: missing weights (the model description {json_path} names it)")
    _check_safetensors_header(weights)
    expected = doc.get("weights_sha256")
    if expected is not None and expected != _sha256(weights):
        raise ModelError(
            f"{weights}: SHA-256 differs from weights_sha256 in {json_path}; the file was changed"
        )
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(weights))
    except Exception as exc:  # safetensors raises SafetensorError / OSError on damaged files
        raise ModelError(f"{weights}: not a readable safetensors file ({exc})") from exc
    for key, array in tensors.items():
        if key.endswith(".num_batches_tracked") and array.dtype == np.int64 and array.size == 1:
            continue  # batch-norm's step counter, an int64 scalar in PyTorch
        if array.dtype != WEIGHTS_DTYPE:
            raise ModelError(f"{weights}: tensor {key!r} is {array.dtype}; InTrEPID weights are float32")
        if not np.all(np.isfinite(array)):
            raise ModelError(f"{weights}: tensor {key!r} holds NaN or infinite values")
    return doc, dict(tensors)


def load_model(path: str | os.PathLike[str], *, device: str = "cpu") -> Ensemble:
    """Load a model (a single network or an ensemble) as an :class:`~intrepid.learn.Ensemble` predictor.

    Parameters
    ----------
    path : path-like
        Model folder holding ``model.json`` + ``model.safetensors`` (or either file of the pair).
    device : str
        ``"cpu"`` (default), ``"cuda"`` or ``"auto"``.

    Returns
    -------
    Ensemble
        Ready to predict; averages its members.

    Raises
    ------
    ModelError
        Pickle-based or unknown files (refused without reading them as pickles), missing or inconsistent
        files, weights that do not fit the described architecture.

    Examples
    --------
    >>> model = load_model("run/ensemble")  # doctest: +SKIP
    >>> dose = model.predict(read_rtimage("epid.dcm").image)  # doctest: +SKIP
    """
    from intrepid.learn._ensemble import Ensemble

    doc, tensors = read_model_files(path)
    json_path, _ = _paths(path)
    try:
        return Ensemble.from_description(doc, tensors, device=device)
    except ModelError as exc:
        text = " ".join(str(exc).split())  # one line: torch's messages span several
        raise ModelError(text if str(json_path.parent) in text else f"{json_path.parent}: {text}") from exc
    except (RuntimeError, ValueError, KeyError, TypeError, IndexError) as exc:  # torch: shape mismatches
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(
            f"{json_path.parent}: the weights do not fit the architecture described in {JSON_NAME} ({first})"
        ) from exc
