"""What the fuzz tests accept as an outcome: a clean refusal that names the input, or a sane result.

A *clean refusal* is an :class:`~intrepid.errors.IntrepidError` (or, for the CLI, exit status 1 or 2 with
exactly one line on stderr) whose message names the file or the flag. Anything else that is raised is a
traceback and fails the test.

A *sane result* has no silent wrong number in it: every float reachable through the result's dataclass
fields, tuples, dicts and arrays is finite, and quantities named with a unit obey the ranges below (the same
wide physical ranges as :data:`intrepid.dicom._validate.TAG_RANGES`). The names carry the units
(``gantry_deg``, ``sid_mm``), so the checks follow them.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings

from intrepid.dicom._validate import MAX_DOSE_GY
from intrepid.errors import IntrepidError

__all__ = ["FUZZ", "Outcome", "assert_sane", "outcome_of"]

_EXAMPLES = os.environ.get("INTREPID_FUZZ_EXAMPLES")

settings.register_profile(
    "intrepid-fuzz-short",
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)
settings.register_profile(
    "intrepid-fuzz-long",
    max_examples=int(_EXAMPLES) if _EXAMPLES else 40,
    derandomize=False,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    print_blob=True,
)

#: The profile the fuzz tests use (``settings(parent=FUZZ)``).
FUZZ = settings.get_profile("intrepid-fuzz-long" if _EXAMPLES else "intrepid-fuzz-short")


_LIMITS: tuple[tuple[str, float], ...] = (
    ("_deg", 360.0),
    ("spacing_mm", 1.0e3),
    ("_mm", 1.0e6),
)


class Outcome(enum.Enum):
    REFUSED = "refused"
    ACCEPTED = "accepted"


def _check_number(value: float, where: str) -> None:
    assert math.isfinite(value), f"silent wrong result: {where} = {value}"
    for suffix, limit in _LIMITS:
        if where.endswith(suffix) or f"{suffix}[" in where:
            assert abs(value) <= limit, f"silent wrong result: {where} = {value:g} (|x| > {limit:g})"
            break
    if "spacing" in where:
        assert value > 0, f"silent wrong result: {where} = {value:g} (spacing must be > 0)"


def assert_sane(result: Any, where: str = "result", _depth: int = 0) -> None:
    """Walk ``result`` and fail on any non-finite or out-of-range number (see the module docstring)."""
    if _depth > 12 or result is None or isinstance(result, (str, bytes, bool, enum.Enum, Path)):
        return
    if isinstance(result, (int, np.integer)):
        return
    if isinstance(result, (float, np.floating)):
        _check_number(float(result), where)
        return
    if isinstance(result, np.ndarray):
        if result.dtype.kind in "fc" and result.size:
            if where.endswith(".array"):
                # a volume's values: NaN is the documented 'no value' (a gamma map below its cut-off);
                # infinities and absurd magnitudes are not
                values = result[~np.isnan(result)]
                assert not np.isinf(values).any(), f"silent wrong result: {where} holds infinities"
                peak = float(np.max(np.abs(values))) if values.size else 0.0
                assert peak <= 1.0e6, f"silent wrong result: {where} reaches {peak:g}"
                return
            finite = np.isfinite(result)
            assert finite.all(), (
                f"silent wrong result: {where} holds {int((~finite).sum())} non-finite values"
            )
            if result.ndim <= 2:
                for v in result.reshape(-1)[:64]:
                    _check_number(float(v), where + "[]")
        return
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        for f in dataclasses.fields(result):
            assert_sane(getattr(result, f.name), f"{where}.{f.name}", _depth + 1)
        _check_domain(result, where)
        return
    if isinstance(result, dict):
        for k, v in result.items():
            assert_sane(v, f"{where}.{k}", _depth + 1)
        return
    if isinstance(result, (list, tuple)):
        for n, v in enumerate(result[:256]):
            assert_sane(v, f"{where}[{n}]" if not isinstance(v, (int, float)) else where, _depth + 1)


def _check_domain(obj: Any, where: str) -> None:
    """Relations between fields that a range check alone cannot see."""
    name = type(obj).__name__
    if name == "RTImage":
        assert obj.sid_mm >= obj.sad_mm > 0, (
            f"silent wrong result: {where} SID {obj.sid_mm} <= SAD {obj.sad_mm}"
        )
    if name == "RTDose" and obj.volume.units == "Gy" and obj.volume.array.size:
        assert float(np.max(np.abs(obj.volume.array))) <= MAX_DOSE_GY, f"silent wrong result: {where} dose"


def outcome_of(call: Callable[[], Any], names: tuple[str, ...]) -> tuple[Outcome, Any]:
    """Run ``call``; a refusal must be one line naming one of ``names``; a success must be sane."""
    try:
        result = call()
    except IntrepidError as exc:
        message = str(exc)
        assert "\n" not in message, f"multi-line error: {message!r}"
        assert any(n in message for n in names), f"the error names neither of {names}: {message!r}"
        return Outcome.REFUSED, message
    assert_sane(result)
    return Outcome.ACCEPTED, result
