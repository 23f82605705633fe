"""Small helpers shared by the sub-commands: JSON output and argument checks.

Numeric flags are parsed by :func:`bounded` (a finite number inside a documented range) and output files by
:func:`output_file` (an accepted extension), so that a bad value stops at the command line with argparse's
``argument --dta: must be in (0, 20] mm, got 10000`` before any file is read or memory is allocated.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["bounded", "output_file", "to_jsonable", "write_json"]


def _fmt(value: float) -> str:
    return f"{value:g}"


def bounded(
    low: float | None = None,
    high: float | None = None,
    *,
    unit: str = "",
    integer: bool = False,
    low_open: bool = False,
    high_open: bool = False,
) -> Callable[[str], Any]:
    """An argparse ``type`` that accepts a finite number in ``[low, high]`` (``(`` / ``)`` when open).

    Parameters
    ----------
    low, high : float, optional
        Bounds (None: unbounded on that side).
    unit : str
        Unit shown in the message (``"mm"``, ``"degrees"``).
    integer : bool
        Accept whole numbers only and return an ``int``.
    low_open, high_open : bool
        Exclude the bound itself.

    Examples
    --------
    >>> parse = bounded(0, 20, unit="mm", low_open=True)
    >>> parse("3")
    3.0
    >>> parse("1e4")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be in (0, 20] mm, got 1e4
    """
    left = "(" if low_open else "["
    right = ")" if high_open else "]"
    text_low = "-inf" if low is None else _fmt(low)
    text_high = "inf" if high is None else _fmt(high)
    rule = f"{left}{text_low}, {text_high}{right}{' ' + unit if unit else ''}"

    def parse(text: str) -> Any:
        try:
            value = float(text)
        except ValueError:
            kind = "a whole number" if integer else "a number"
            raise argparse.ArgumentTypeError(f"must be {kind} in {rule}, got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number in {rule}, got {text}")
        if integer and value != int(value):
            raise argparse.ArgumentTypeError(f"must be a whole number in {rule}, got {text}")
        too_low = low is not None and (value <= low if low_open else value < low)
        too_high = high is not None and (value >= high if high_open else value > high)
        if too_low or too_high:
            raise argparse.ArgumentTypeError(f"must be in {rule}, got {text}")
        return int(value) if integer else value

    parse.__name__ = "integer" if integer else "number"  # argparse names the type in some messages
    return parse


def output_file(*suffixes: str) -> Callable[[str], Path]:
    """An argparse ``type`` for an output path whose name must end with one of ``suffixes`` (``".png"``).

    The folder is checked later, when the file is written; an existing folder named like the file is refused.
    """
    accepted = tuple(s.lower() for s in suffixes)

    def parse(text: str) -> Path:
        path = Path(text)
        if not path.name.lower().endswith(accepted):
            raise argparse.ArgumentTypeError(
                f"must end with {' or '.join(accepted)}, got {text!r}"
            )
        if path.is_dir():
            raise argparse.ArgumentTypeError(f"{text} is a folder; give a file name")
        return path

    parse.__name__ = "output file"
    return parse


def to_jsonable(value: Any) -> Any:
    """Convert NumPy scalars / arrays, tuples, enums and non-finite floats into plain JSON values.

    NaN and infinities become ``null`` so that the output is strict JSON.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "value") and hasattr(value, "name") and not isinstance(value, (str, int)):
        return to_jsonable(value.value)  # Enum
    return value


def write_json(data: Any) -> None:
    """Print ``data`` as indented strict JSON on stdout."""
    sys.stdout.write(json.dumps(to_jsonable(data), indent=2, allow_nan=False) + "\n")
