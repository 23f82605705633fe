"""Small helpers shared by the sub-commands: JSON output and argument checks."""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import numpy as np

__all__ = ["to_jsonable", "write_json"]


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
