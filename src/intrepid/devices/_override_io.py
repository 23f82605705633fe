"""Reading manual override polygons for apertures from CSV or JSON files.

Formats
-------
CSV (``.csv``, ``.txt``)
    One vertex per line, ``x_mm,y_mm`` (comma, semicolon, tab or spaces), beam-frame axes, **in mm at the
    isocentre plane**. A blank line starts a new polygon; lines starting with ``#`` and a non-numeric header
    line are skipped.
JSON (``.json``)
    ``{"plane": "isocenter" | "device", "polygons": [[[x, y], ...], ...]}``, or
    ``{"polygon": [[x, y], ...]}``, or a bare list of ``[x, y]`` vertices. ``plane`` defaults to
    ``"isocenter"``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from intrepid.devices._aperture_params import ApertureOverride, AperturePlane, OverrideMode
from intrepid.errors import ParameterError

__all__ = ["read_override_file"]

_SPLIT = re.compile(r"[,;\t ]+")


def _csv_polygons(text: str, path: Path) -> list[np.ndarray]:
    polygons: list[list[tuple[float, float]]] = [[]]
    for n, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("#"):
            continue
        if not line:
            if polygons[-1]:
                polygons.append([])
            continue
        fields = [f for f in _SPLIT.split(line) if f]
        try:
            values = [float(f) for f in fields]
        except ValueError:
            if n == 1 or not any(polygons):
                continue  # header
            raise ParameterError(f"{path}: line {n}: expected 'x_mm,y_mm', got {raw!r}") from None
        if len(values) != 2:
            raise ParameterError(f"{path}: line {n}: expected 2 values (x_mm, y_mm), got {len(values)}")
        polygons[-1].append((values[0], values[1]))
    return [np.asarray(p, dtype=float) for p in polygons if p]


def _json_polygons(data: Any, path: Path) -> tuple[list[np.ndarray], AperturePlane]:
    plane = AperturePlane.ISOCENTER
    if isinstance(data, dict):
        if "plane" in data:
            try:
                plane = AperturePlane(str(data["plane"]).lower())
            except ValueError:
                raise ParameterError(
                    f"{path}: 'plane' must be 'isocenter' or 'device', got {data['plane']!r}"
                ) from None
        if "polygons" in data:
            raw = data["polygons"]
        elif "polygon" in data:
            raw = [data["polygon"]]
        else:
            raise ParameterError(f"{path}: a JSON override needs a 'polygons' or 'polygon' key")
    elif isinstance(data, list):
        raw = [data]
    else:
        raise ParameterError(f"{path}: a JSON override must be an object or a list of [x, y] vertices")
    out = []
    for n, poly in enumerate(raw):
        try:
            arr = np.asarray(poly, dtype=float)
        except (TypeError, ValueError):
            raise ParameterError(f"{path}: polygon {n} must be a list of [x, y] numbers") from None
        out.append(arr)
    return out, plane


def read_override_file(path: str | os.PathLike[str], mode: OverrideMode | str) -> list[ApertureOverride]:
    """Read override polygons from a CSV or JSON file (formats in the module docstring).

    Parameters
    ----------
    path : path-like
    mode : OverrideMode or str
        ``"add"`` or ``"limit"``, applied to every polygon of the file.

    Returns
    -------
    list of ApertureOverride

    Raises
    ------
    ParameterError
        Unknown extension, malformed content, or a polygon with fewer than 3 vertices (the message names the
        file).
    """
    p = Path(path)
    try:
        m = mode if isinstance(mode, OverrideMode) else OverrideMode(str(mode).strip().lower())
    except ValueError:
        raise ParameterError(f"override mode must be 'add' or 'limit', got {mode!r}") from None
    text = p.read_text(encoding="utf-8")
    suffix = p.suffix.lower()
    if suffix in (".csv", ".txt"):
        polygons, plane = _csv_polygons(text, p), AperturePlane.ISOCENTER
    elif suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ParameterError(f"{p}: not valid JSON ({exc})") from None
        polygons, plane = _json_polygons(data, p)
    else:
        raise ParameterError(
            f"{p}: override files must be .csv, .txt or .json, got {suffix or 'no extension'!r}"
        )
    if not polygons:
        raise ParameterError(f"{p}: no polygon found")
    out = []
    for n, poly in enumerate(polygons):
        try:
            out.append(ApertureOverride(poly, m, plane))
        except ParameterError as exc:
            raise ParameterError(f"{p}: polygon {n}: {exc}") from None
    return out
