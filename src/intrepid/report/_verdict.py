"""Action levels and the pass / fail verdict of a portal-dose comparison.

A department sets its own action levels; the defaults are the SOFTDISO tolerances (Cilla et al. 2018,
Technol. Cancer Res. Treat. 17:1533033818779201, doi:10.1177/1533033818779201): the ratio of the delivered to
the expected dose at the isocentre within 0.95-1.05, a global gamma pass rate at 3 %/3 mm of at least 90 % and
a mean gamma of at most 0.5. A verdict lists every level that fired, with the measured value beside it, so the
reader sees *why* a beam failed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from intrepid.errors import ParameterError

__all__ = ["DEFAULT_ACTION_LEVELS", "ActionLevels", "Verdict", "judge"]


@dataclass(frozen=True)
class ActionLevels:
    """Limits whose violation makes a beam fail.

    Attributes
    ----------
    gamma_dd_percent, gamma_dta_mm : float
        The gamma criterion the levels apply to (global, % of the reference maximum / mm). Default 3 %/3 mm.
    min_pass_rate_percent : float
        Lowest acceptable gamma pass rate, % (SOFTDISO: 90).
    max_mean_gamma : float
        Highest acceptable mean gamma (SOFTDISO: 0.5).
    iso_ratio_low, iso_ratio_high : float
        Acceptable range of the isocentre dose ratio, measured / reference (SOFTDISO: 0.95-1.05).
    source : str
        Where the numbers come from (shown in reports).
    """

    gamma_dd_percent: float = 3.0
    gamma_dta_mm: float = 3.0
    min_pass_rate_percent: float = 90.0
    max_mean_gamma: float = 0.5
    iso_ratio_low: float = 0.95
    iso_ratio_high: float = 1.05
    source: str = "SOFTDISO tolerances, Cilla et al. 2018, doi:10.1177/1533033818779201"

    def __post_init__(self) -> None:
        for name in ("gamma_dd_percent", "gamma_dta_mm", "max_mean_gamma", "iso_ratio_low", "iso_ratio_high"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be > 0, got {v!r}")
        if not 0 <= self.min_pass_rate_percent <= 100:
            raise ParameterError(
                f"min_pass_rate_percent must be in [0, 100], got {self.min_pass_rate_percent}"
            )
        if self.iso_ratio_low >= self.iso_ratio_high:
            raise ParameterError(
                f"iso_ratio_low ({self.iso_ratio_low}) must be below iso_ratio_high ({self.iso_ratio_high})"
            )

    @property
    def criterion_label(self) -> str:
        """``"3%/3mm"``."""
        return f"{self.gamma_dd_percent:g}%/{self.gamma_dta_mm:g}mm"

    def describe(self) -> list[str]:
        """One line per level, e.g. ``"γ 3%/3mm pass rate ≥ 90 %"``."""
        c = self.criterion_label
        return [
            f"γ {c} pass rate ≥ {self.min_pass_rate_percent:g} %",
            f"mean γ ({c}) ≤ {self.max_mean_gamma:g}",
            f"isocentre ratio in [{self.iso_ratio_low:g}, {self.iso_ratio_high:g}]",
        ]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "gamma_dd_percent": self.gamma_dd_percent,
            "gamma_dta_mm": self.gamma_dta_mm,
            "min_pass_rate_percent": self.min_pass_rate_percent,
            "max_mean_gamma": self.max_mean_gamma,
            "iso_ratio_low": self.iso_ratio_low,
            "iso_ratio_high": self.iso_ratio_high,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ActionLevels:
        """Inverse of :meth:`to_dict`; unknown keys are refused by name."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(d) - known)
        if unknown:
            raise ParameterError(f"unknown action-level keys {unknown}; known: {sorted(known)}")
        return cls(**d)


#: The SOFTDISO defaults.
DEFAULT_ACTION_LEVELS = ActionLevels()


@dataclass(frozen=True)
class Verdict:
    """Pass / fail of one comparison and the action levels that fired (empty when it passed).

    ``complete`` is False when a quantity was missing (NaN), which is reported as a fired level too: a
    comparison that could not be made never passes silently.
    """

    passed: bool
    fired: tuple[str, ...]

    @property
    def label(self) -> str:
        """``"PASS"`` or ``"FAIL"``."""
        return "PASS" if self.passed else "FAIL"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {"passed": self.passed, "fired": list(self.fired)}


def judge(
    pass_rate_percent: float,
    mean_gamma: float,
    iso_ratio: float | None,
    levels: ActionLevels = DEFAULT_ACTION_LEVELS,
) -> Verdict:
    """The verdict of one comparison under ``levels``.

    Parameters
    ----------
    pass_rate_percent : float
        Gamma pass rate at ``levels``' criterion, %.
    mean_gamma : float
        Mean gamma at the same criterion.
    iso_ratio : float or None
        Measured / reference dose at the isocentre (None: not measurable, e.g. the isocentre is blocked; the
        level is then skipped and says so).
    levels : ActionLevels

    Returns
    -------
    Verdict

    Examples
    --------
    >>> judge(97.0, 0.31, 1.07).fired
    ('isocentre ratio 1.070 outside [0.95, 1.05]',)
    """
    fired = []
    c = levels.criterion_label
    if not math.isfinite(pass_rate_percent):
        fired.append(f"γ {c} pass rate not computable")
    elif pass_rate_percent < levels.min_pass_rate_percent:
        fired.append(f"γ {c} pass rate {pass_rate_percent:.1f} % < {levels.min_pass_rate_percent:g} %")
    if not math.isfinite(mean_gamma):
        fired.append(f"mean γ ({c}) not computable")
    elif mean_gamma > levels.max_mean_gamma:
        fired.append(f"mean γ ({c}) {mean_gamma:.2f} > {levels.max_mean_gamma:g}")
    if iso_ratio is not None:
        if not math.isfinite(iso_ratio):
            fired.append("isocentre ratio not computable")
        elif not levels.iso_ratio_low <= iso_ratio <= levels.iso_ratio_high:
            bounds = f"[{levels.iso_ratio_low:g}, {levels.iso_ratio_high:g}]"
            fired.append(f"isocentre ratio {iso_ratio:.3f} outside {bounds}")
    return Verdict(not fired, tuple(fired))
