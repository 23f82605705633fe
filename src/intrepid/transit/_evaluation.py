"""Evaluation of portal-dose predictions as in the seed's tables: gamma pass rates, MAE, maximum error.

Per test image and method (the network, the physics baseline, ...): the global gamma pass rate at each
criterion (default 3 %/3 mm, 5 %/5 mm and 2 %/2 mm; 10 % cut-off of the reference maximum, the reference
being the true portal dose on the detector grid, distances in mm *at the detector*), the mean gamma, the mean
absolute error (MAE, Gy, over the pixels at or above the cut-off) and the maximum absolute error (Gy, same
pixels). Summaries give mean, standard deviation (n - 1), median, minimum and maximum over images, overall,
per phantom family and per family × field group, as in the seed's Table 3.

:func:`leave_one_family_out` trains on every family but one and tests on the family left out (the
generalisation to unseen anatomy that failed in the seed).

References
----------
Low DA, Harms WB, Mutic S, Purdy JA 1998, A technique for the quantitative evaluation of dose distributions,
Med. Phys. 25:656, doi:10.1118/1.598248 (gamma index).
Miften M et al. 2018, AAPM TG-218, Med. Phys. 45:e53, doi:10.1002/mp.12810 (global normalisation, 10 %
threshold).
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from intrepid.errors import ParameterError
from intrepid.geometry import Volume

__all__ = [
    "DEFAULT_CRITERIA",
    "Comparison",
    "Criterion",
    "Evaluation",
    "FamilyHoldout",
    "ImageEvaluation",
    "ImageMaps",
    "MethodMetrics",
    "Predictor",
    "Statistics",
    "compare_methods",
    "evaluate_image",
    "evaluate_pairs",
    "leave_one_family_out",
]

_log = logging.getLogger(__name__)


class Predictor(Protocol):
    """Anything that maps an EPID Volume to a portal-dose Volume (an ensemble, the kernel baseline)."""

    def predict(self, epid: Volume) -> Volume: ...


@dataclass(frozen=True)
class Criterion:
    """A gamma criterion: dose difference (percent of the reference maximum, or of the local reference dose
    when ``local``) and distance (mm)."""

    dd_percent: float
    dta_mm: float
    local: bool = False

    def __post_init__(self) -> None:
        for name in ("dd_percent", "dta_mm"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ParameterError(f"{name} must be > 0, got {v!r}")
        if not isinstance(self.local, bool):
            raise ParameterError(f"local must be True or False, got {self.local!r}")

    @property
    def key(self) -> str:
        """JSON key fragment, ``"3mm3pct"`` (as in ``pass_rate_3mm3pct_percent``); ``"2mm2pct_local"`` for a
        local criterion."""
        return f"{self.dta_mm:g}mm{self.dd_percent:g}pct" + ("_local" if self.local else "")

    @property
    def label(self) -> str:
        """Human-readable, ``"3%/3mm"`` (``"2%/2mm local"``)."""
        return f"{self.dd_percent:g}%/{self.dta_mm:g}mm" + (" local" if self.local else "")


#: 3 %/3 mm and 5 %/5 mm (the seed's), 2 %/2 mm and 1 %/1 mm global, 2 %/2 mm local (TG-218's stricter
#: options); all with the same low-dose cut-off.
DEFAULT_CRITERIA: tuple[Criterion, ...] = (
    Criterion(3.0, 3.0),
    Criterion(5.0, 5.0),
    Criterion(2.0, 2.0),
    Criterion(1.0, 1.0),
    Criterion(2.0, 2.0, local=True),
)


@dataclass(frozen=True)
class MethodMetrics:
    """Metrics of one method on one image.

    Attributes
    ----------
    pass_rates_percent : dict
        Criterion key (``"3mm3pct"``) -> global gamma pass rate (%).
    mean_gamma : dict
        Criterion key -> mean gamma over the evaluated pixels.
    mae_gy : float
        Mean absolute error (Gy) over the pixels at or above the cut-off.
    max_error_gy : float
        Maximum absolute error (Gy) over the same pixels.
    mae_percent : float
        MAE in percent of the reference maximum.
    seconds : float
        Prediction time (s).
    """

    pass_rates_percent: dict[str, float]
    mean_gamma: dict[str, float]
    mae_gy: float
    max_error_gy: float
    mae_percent: float
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``pass_rate_<key>_percent``, ``mean_gamma_<key>``, ``mae_gy``, ``max_error_gy``..."""
        d: dict[str, Any] = {f"pass_rate_{k}_percent": v for k, v in self.pass_rates_percent.items()}
        d.update({f"mean_gamma_{k}": v for k, v in self.mean_gamma.items()})
        d.update(
            {
                "mae_gy": self.mae_gy,
                "max_error_gy": self.max_error_gy,
                "mae_percent": self.mae_percent,
                "seconds": self.seconds,
            }
        )
        return d


@dataclass(frozen=True, eq=False)
class ImageMaps:
    """Display copies of one image's maps (block-averaged to at most ``display_pixels`` per side).

    ``epid``, ``reference`` and each ``predictions[method]`` hold the signal / dose (Gy); ``gamma[method]``
    the gamma map at the first criterion (block maximum, NaN below the cut-off); ``spacing_mm`` is the (row,
    column) spacing of the display arrays in mm at the detector; ``uncertainty[method]`` the ensemble
    members' dose standard deviation (Gy, block maximum) for methods that give one (an ensemble wrapped in a
    :class:`intrepid.transit.TransitModel`).
    """

    epid: NDArray[np.float32]
    reference: NDArray[np.float32]
    predictions: dict[str, NDArray[np.float32]]
    gamma: dict[str, NDArray[np.float32]]
    spacing_mm: tuple[float, float]
    uncertainty: dict[str, NDArray[np.float32]] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class ImageEvaluation:
    """One test image: what it is and each method's metrics (and maps, when kept)."""

    name: str
    family: str
    field_group: str
    field: str
    max_dose_gy: float
    metrics: dict[str, MethodMetrics]
    maps: ImageMaps | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: identification plus one object of metrics per method."""
        d: dict[str, Any] = {
            "name": self.name,
            "family": self.family,
            "field_group": self.field_group,
            "field": self.field,
            "max_dose_gy": self.max_dose_gy,
        }
        for method, m in self.metrics.items():
            d[method] = m.to_dict()
        return d


@dataclass(frozen=True)
class Statistics:
    """Mean, standard deviation (n - 1; 0 for one value), median, minimum and maximum of finite values."""

    mean: float
    std: float
    median: float
    minimum: float
    maximum: float
    n: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Statistics:
        """Statistics of the finite values (NaN fields when there are none)."""
        a = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
        if a.size == 0:
            nan = float("nan")
            return cls(nan, nan, nan, nan, nan, 0)
        return cls(
            float(a.mean()),
            float(a.std(ddof=1)) if a.size > 1 else 0.0,
            float(np.median(a)),
            float(a.min()),
            float(a.max()),
            int(a.size),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {
            "mean": self.mean,
            "std": self.std,
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "n": self.n,
        }


def _metric_values(images: Sequence[ImageEvaluation], method: str, metric: str) -> list[float]:
    out = []
    for im in images:
        m = im.metrics.get(method)
        if m is None:
            continue
        if metric.startswith("pass_rate_"):
            out.append(m.pass_rates_percent[metric[len("pass_rate_") : -len("_percent")]])
        else:
            out.append(float(getattr(m, metric)))
    return out


@dataclass(frozen=True, eq=False)
class Evaluation:
    """Per-image metrics of several methods on one set of test images, with the settings used.

    Attributes
    ----------
    images : tuple of ImageEvaluation
    methods : tuple of str
        Method names in display order (``"network"``, ``"baseline"``).
    criteria : tuple of Criterion
    cutoff_percent : float
        Low-dose cut-off (% of the reference maximum).
    settings : dict
        Everything else worth reporting (normalisation, software version, model description...).
    """

    images: tuple[ImageEvaluation, ...]
    methods: tuple[str, ...]
    criteria: tuple[Criterion, ...] = DEFAULT_CRITERIA
    cutoff_percent: float = 10.0
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """``pass_rate_<key>_percent`` for every criterion, then ``mae_gy``, ``max_error_gy``."""
        return (*(f"pass_rate_{c.key}_percent" for c in self.criteria), "mae_gy", "max_error_gy")

    def statistics(
        self, method: str, metric: str, images: Sequence[ImageEvaluation] | None = None
    ) -> Statistics:
        """Statistics of one metric of one method over ``images`` (default: all)."""
        if method not in self.methods:
            raise ParameterError(f"method must be one of {list(self.methods)}, got {method!r}")
        if metric not in self.metric_names:
            raise ParameterError(f"metric must be one of {list(self.metric_names)}, got {metric!r}")
        return Statistics.of(_metric_values(self.images if images is None else images, method, metric))

    def summary(self, images: Sequence[ImageEvaluation] | None = None) -> dict[str, dict[str, Statistics]]:
        """method -> metric -> Statistics."""
        return {m: {k: self.statistics(m, k, images) for k in self.metric_names} for m in self.methods}

    def groups(self, by: str = "family") -> dict[str, list[ImageEvaluation]]:
        """Images grouped ``by`` ``"family"`` or ``"family_field"`` (``"OMG | 10x10"``), sorted by name."""
        if by not in ("family", "family_field"):
            raise ParameterError(f"by must be 'family' or 'family_field', got {by!r}")
        out: dict[str, list[ImageEvaluation]] = defaultdict(list)
        for im in self.images:
            out[im.family if by == "family" else f"{im.family} | {im.field_group}"].append(im)
        return dict(sorted(out.items()))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``settings``, ``methods``, ``images`` (per image and method), ``summary`` (method ->
        metric -> mean / std / median / min / max / n), ``by_family`` and ``by_family_field`` (group -> the
        same as ``summary``)."""

        def table(images: Sequence[ImageEvaluation] | None) -> dict[str, Any]:
            return {m: {k: s.to_dict() for k, s in d.items()} for m, d in self.summary(images).items()}

        return {
            "settings": {
                "criteria": [
                    {
                        "dd_percent": c.dd_percent,
                        "dta_mm": c.dta_mm,
                        "key": c.key,
                        "normalisation": "local" if c.local else "global",
                    }
                    for c in self.criteria
                ],
                "cutoff_percent": self.cutoff_percent,
                "normalisation": "global (reference maximum) unless the criterion says local",
                **self.settings,
            },
            "methods": list(self.methods),
            "n_images": len(self.images),
            "images": [im.to_dict() for im in self.images],
            "summary": table(None),
            "by_family": {g: table(ims) for g, ims in self.groups("family").items()},
            "by_family_field": {g: table(ims) for g, ims in self.groups("family_field").items()},
            "comparisons": [
                c.to_dict()
                for other in self.methods[1:]
                for c in compare_methods(self, self.methods[0], other)
            ],
        }


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two methods on the same images for one metric.

    Attributes
    ----------
    method_a, method_b, metric : str
    n : int
        Images with both values finite.
    mean_difference : float
        Mean of ``a - b`` over the images.
    ci95 : (float, float)
        Percentile bootstrap 95 % confidence interval of the mean difference (images resampled with
        replacement, seeded).
    wilcoxon_p : float
        Two-sided Wilcoxon signed-rank p-value (``scipy.stats.wilcoxon``, zero differences dropped; NaN when
        every difference is zero or n < 2).
    a_better : int
        Images on which ``a`` is better (higher pass rate, lower error).
    """

    method_a: str
    method_b: str
    metric: str
    n: int
    mean_difference: float
    ci95: tuple[float, float]
    wilcoxon_p: float
    a_better: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (non-finite values as None)."""
        return json_ready(
            {
                "method_a": self.method_a,
                "method_b": self.method_b,
                "metric": self.metric,
                "n": self.n,
                "mean_difference": self.mean_difference,
                "ci95_low": self.ci95[0],
                "ci95_high": self.ci95[1],
                "wilcoxon_p": self.wilcoxon_p,
                "a_better": self.a_better,
            }
        )


def compare_methods(
    evaluation: Evaluation,
    method_a: str,
    method_b: str,
    metrics: Sequence[str] | None = None,
    *,
    n_bootstrap: int = 10000,
    seed: int = 0,
) -> list[Comparison]:
    """Paired Wilcoxon signed-rank tests and bootstrap 95 % CIs of ``method_a - method_b`` per metric.

    Parameters
    ----------
    evaluation : Evaluation
    method_a, method_b : str
        Two of its methods.
    metrics : sequence of str, optional
        Default: every metric of the evaluation.
    n_bootstrap : int
        Bootstrap resamples (>= 100).
    seed : int
        Bootstrap seed.

    References
    ----------
    Wilcoxon F 1945, Individual comparisons by ranking methods, Biometrics Bull. 1:80, doi:10.2307/3001968.
    Efron B, Tibshirani RJ 1993, An Introduction to the Bootstrap, Chapman & Hall, doi:10.1201/9780429246593.
    """
    from scipy.stats import wilcoxon

    for m in (method_a, method_b):
        if m not in evaluation.methods:
            raise ParameterError(f"method must be one of {list(evaluation.methods)}, got {m!r}")
    if isinstance(n_bootstrap, bool) or int(n_bootstrap) != n_bootstrap or n_bootstrap < 100:
        raise ParameterError(f"n_bootstrap must be an integer >= 100, got {n_bootstrap!r}")
    out = []
    rng = np.random.default_rng(seed)
    for metric in metrics or evaluation.metric_names:
        a = np.asarray(_metric_values(evaluation.images, method_a, metric), dtype=float)
        b = np.asarray(_metric_values(evaluation.images, method_b, metric), dtype=float)
        ok = np.isfinite(a) & np.isfinite(b)
        d = a[ok] - b[ok]
        n = int(d.size)
        if n == 0:
            nan = float("nan")
            out.append(Comparison(method_a, method_b, metric, 0, nan, (nan, nan), nan, 0))
            continue
        boots = d[rng.integers(0, n, size=(int(n_bootstrap), n))].mean(axis=1)
        lo, hi = (float(v) for v in np.percentile(boots, [2.5, 97.5]))
        p = float("nan")
        if n >= 2 and np.any(d != 0):
            p = float(wilcoxon(d, zero_method="wilcox", alternative="two-sided").pvalue)
        higher_is_better = metric.startswith("pass_rate_")
        better = int(np.sum(d > 0) if higher_is_better else np.sum(d < 0))
        out.append(Comparison(method_a, method_b, metric, n, float(d.mean()), (lo, hi), p, better))
    return out


def json_ready(value: Any) -> Any:
    """Plain JSON values: NumPy scalars to Python, non-finite floats to None, tuples to lists."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        return json_ready(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def _block(a: NDArray[Any], factor: int, reduce: str) -> NDArray[np.float32]:
    if factor <= 1:
        return np.asarray(a, dtype=np.float32)
    r, c = (a.shape[0] // factor) * factor, (a.shape[1] // factor) * factor
    b = np.asarray(a[:r, :c], dtype=np.float64).reshape(r // factor, factor, c // factor, factor)
    if reduce == "max":
        with np.errstate(all="ignore"):
            filled = np.where(np.isnan(b), -np.inf, b).max(axis=(1, 3))
        return np.asarray(np.where(np.isinf(filled), np.nan, filled), dtype=np.float32)
    return np.asarray(b.mean(axis=(1, 3)), dtype=np.float32)


def evaluate_image(
    reference: Volume,
    predicted: Volume,
    *,
    criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
    cutoff_percent: float = 10.0,
) -> tuple[MethodMetrics, list[Volume]]:
    """Gamma pass rates, MAE and maximum error of one predicted portal dose against the reference.

    Parameters
    ----------
    reference : Volume
        True portal dose (Gy), 2D.
    predicted : Volume
        Predicted portal dose (Gy) on the same grid.
    criteria : sequence of Criterion
        Gamma criteria (global, normalised to the reference maximum).
    cutoff_percent : float
        Low-dose cut-off in percent of the reference maximum, in [0, 100).

    Returns
    -------
    (MethodMetrics, list of Volume)
        The metrics and the gamma map of each criterion.

    Raises
    ------
    ParameterError
        Shapes differ, no criterion, a bad cut-off.
    """
    from intrepid.analysis import gamma

    if not criteria:
        raise ParameterError("criteria must hold at least one Criterion, got none")
    if not (0 <= cutoff_percent < 100):
        raise ParameterError(f"cutoff_percent must be in [0, 100), got {cutoff_percent}")
    if reference.shape != predicted.shape:
        raise ParameterError(
            f"predicted shape {predicted.shape} differs from the reference shape {reference.shape}"
        )
    ref = np.asarray(reference.array, dtype=np.float64)
    pred = np.asarray(predicted.array, dtype=np.float64)
    evaluated = predicted.with_array(pred, frame_of_reference_uid=reference.frame_of_reference_uid)
    rates: dict[str, float] = {}
    means: dict[str, float] = {}
    maps = []
    from intrepid.analysis import Normalisation

    for c in criteria:
        res = gamma(
            reference,
            evaluated,
            dd_percent=c.dd_percent,
            dta_mm=c.dta_mm,
            cutoff_percent=cutoff_percent,
            normalisation=Normalisation.LOCAL if c.local else Normalisation.GLOBAL,
        )
        rates[c.key] = float(res.pass_rate_percent)
        means[c.key] = float(res.mean_gamma)
        maps.append(res.gamma_map)
    dmax = float(ref.max())
    mask = ref >= cutoff_percent / 100.0 * dmax
    err = np.abs(pred - ref)[mask] if mask.any() else np.zeros(1)
    mae = float(err.mean())
    metrics = MethodMetrics(
        rates, means, mae, float(err.max()), 100.0 * mae / dmax if dmax > 0 else float("nan")
    )
    return metrics, maps


def _record_info(pair: Any) -> tuple[str, str, str, str]:
    rec = getattr(pair, "record", None)
    if rec is None:
        return (str(getattr(pair, "name", "")), "", "", "")
    return (rec.name, rec.family, rec.field_group or rec.field, rec.field)


def evaluate_pairs(
    pairs: Sequence[Any],
    predictors: Mapping[str, Predictor | Callable[[Volume], Volume]],
    *,
    criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
    cutoff_percent: float = 10.0,
    keep_maps: bool = False,
    display_pixels: int = 256,
    settings: dict[str, Any] | None = None,
    progress: bool = False,
) -> Evaluation:
    """Predict every pair's EPID image with each method and evaluate it against the true portal dose.

    Parameters
    ----------
    pairs : sequence of Pair
        Test pairs (``.epid``, ``.portal_dose``, ``.record``); a :class:`intrepid.learn.PairDataset` works.
    predictors : mapping of str to Predictor or callable
        Method name -> an object with ``predict(epid) -> Volume`` (an ensemble, the kernel baseline) or a
        function doing the same.
    criteria : sequence of Criterion
        Gamma criteria (default 3 %/3 mm, 5 %/5 mm, 2 %/2 mm).
    cutoff_percent : float
        Low-dose cut-off (% of the reference maximum).
    keep_maps : bool
        Keep display copies of the images, predictions and gamma maps (first criterion) for a report.
    display_pixels : int
        Maximum side of the display copies (>= 16).
    settings : dict, optional
        Extra settings recorded in the result (model, software...).
    progress : bool
        Progress bar over the images (tqdm).

    Returns
    -------
    Evaluation

    Raises
    ------
    ParameterError
        No pairs or no predictors, bad criteria.

    Examples
    --------
    >>> ev = evaluate_pairs(load_dataset("pairs/", split="test"),
    ...     {"network": load_default_model(), "baseline": load_default_baseline()})  # doctest: +SKIP
    >>> ev.statistics("network", "pass_rate_3mm3pct_percent").mean  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    items = list(pairs)
    if not items:
        raise ParameterError("pairs must hold at least one pair, got 0")
    if not predictors:
        raise ParameterError("predictors must name at least one method, got none")
    crit = tuple(criteria)
    if not crit or not all(isinstance(c, Criterion) for c in crit):
        raise ParameterError(f"criteria must be a non-empty sequence of Criterion, got {criteria!r}")
    if isinstance(display_pixels, bool) or int(display_pixels) != display_pixels or display_pixels < 16:
        raise ParameterError(f"display_pixels must be an integer >= 16, got {display_pixels!r}")
    calls = {name: (p.predict if hasattr(p, "predict") else p) for name, p in predictors.items()}
    out = []
    for pair in tqdm(items, desc="evaluate", unit="image", disable=not progress):
        name, family, group, field_name = _record_info(pair)
        ref = pair.portal_dose
        metrics: dict[str, MethodMetrics] = {}
        preds: dict[str, NDArray[np.float32]] = {}
        gmaps: dict[str, NDArray[np.float32]] = {}
        factor = max(1, math.ceil(max(ref.shape) / display_pixels))
        spreads: dict[str, NDArray[np.float32]] = {}
        for method, call in calls.items():
            t = time.perf_counter()
            full = getattr(predictors[method], "predict_full", None)
            if keep_maps and full is not None:
                result = full(pair.epid, uncertainty=True)
                pred = result.dose
                if result.uncertainty is not None:
                    spreads[method] = _block(np.asarray(result.uncertainty.array), factor, "max")
            else:
                pred = call(pair.epid)
            seconds = time.perf_counter() - t
            m, maps = evaluate_image(ref, pred, criteria=crit, cutoff_percent=cutoff_percent)
            metrics[method] = MethodMetrics(
                m.pass_rates_percent, m.mean_gamma, m.mae_gy, m.max_error_gy, m.mae_percent, seconds
            )
            if keep_maps:
                preds[method] = _block(np.asarray(pred.array), factor, "mean")
                gmaps[method] = _block(np.asarray(maps[0].array), factor, "max")
        kept = None
        if keep_maps:
            sp = (float(ref.grid.spacing_mm[1]) * factor, float(ref.grid.spacing_mm[0]) * factor)
            kept = ImageMaps(
                _block(np.asarray(pair.epid.array), factor, "mean"),
                _block(np.asarray(ref.array), factor, "mean"),
                preds,
                gmaps,
                sp,
                spreads,
            )
        out.append(ImageEvaluation(name, family, group, field_name, float(np.max(ref.array)), metrics, kept))
        _log.info(
            "%s: %s",
            name,
            ", ".join(
                f"{meth} {crit[0].label} {mm.pass_rates_percent[crit[0].key]:.2f} %"
                for meth, mm in metrics.items()
            ),
        )
    return Evaluation(tuple(out), tuple(calls), crit, float(cutoff_percent), dict(settings or {}))


@dataclass(frozen=True, eq=False)
class FamilyHoldout:
    """One fold of the leave-one-family-out evaluation: trained without ``family``, tested on it."""

    family: str
    n_train: int
    evaluation: Evaluation
    train_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the family, training size and time, and the evaluation's summary."""
        d = self.evaluation.to_dict()
        return {
            "family": self.family,
            "n_train": self.n_train,
            "n_test": len(self.evaluation.images),
            "train_seconds": self.train_seconds,
            "summary": d["summary"],
            "images": d["images"],
        }


def leave_one_family_out(
    dataset: Any,
    *,
    train_config: Any = None,
    unet: Any = None,
    preprocess: Any = None,
    families: Sequence[str] | None = None,
    test_split: str | None = "test",
    criteria: Sequence[Criterion] = DEFAULT_CRITERIA,
    cutoff_percent: float = 10.0,
    progress: bool = False,
) -> list[FamilyHoldout]:
    """Train a network and fit the baseline without one phantom family, then test both on that family.

    Parameters
    ----------
    dataset : PairDataset
        All pairs (:func:`intrepid.learn.load_dataset`). The training images of a fold are the pairs of the
        other families that are not in ``test_split``; the test images are the held-out family's pairs in
        ``test_split`` (all of its pairs when ``test_split`` is None).
    train_config, unet, preprocess : TrainConfig, UNetConfig, PreprocessConfig, optional
        Training settings of the one network per fold (defaults of :func:`intrepid.learn.train_model`).
    families : sequence of str, optional
        Families to hold out in turn (default: every family of the data set).
    test_split : str or None
        Split of the test images (default ``"test"``).
    criteria, cutoff_percent :
        As in :func:`evaluate_pairs`.
    progress : bool
        Progress bars.

    Returns
    -------
    list of FamilyHoldout
        One per held-out family, with methods ``"network"`` and ``"baseline"``.

    Raises
    ------
    ParameterError
        Fewer than two families, an unknown family, a fold without training or test images.
    """
    from intrepid.learn import train_model
    from intrepid.physics._kernel_baseline import fit_baseline

    records = list(dataset.records)
    all_families = sorted({r.family for r in records if r.family})
    if len(all_families) < 2:
        raise ParameterError(
            f"leave-one-family-out needs at least two families, the data set has {all_families}"
        )
    chosen = list(all_families if families is None else families)
    for f in chosen:
        if f not in all_families:
            raise ParameterError(f"family {f!r} is not in the data set (families: {all_families})")
    out = []
    for fam in chosen:
        train_idx = [
            i
            for i, r in enumerate(records)
            if r.family != fam and (test_split is None or r.split != test_split)
        ]
        test_idx = [
            i
            for i, r in enumerate(records)
            if r.family == fam and (test_split is None or r.split == test_split)
        ]
        if not train_idx or not test_idx:
            raise ParameterError(
                f"holding out {fam!r} leaves {len(train_idx)} training and {len(test_idx)} test pairs; "
                "need >= 1 of each"
            )
        train_pairs = [dataset[i] for i in train_idx]
        t = time.perf_counter()
        model = train_model(
            train_pairs, (), train_config, unet=unet, preprocess=preprocess, progress=progress
        )
        baseline = fit_baseline(train_pairs)
        seconds = time.perf_counter() - t
        ev = evaluate_pairs(
            [dataset[i] for i in test_idx],
            {"network": model.ensemble(), "baseline": baseline},
            criteria=criteria,
            cutoff_percent=cutoff_percent,
            settings={"held_out_family": fam, "n_train": len(train_idx)},
            progress=progress,
        )
        _log.info(
            "held out %s: network %.2f %%, baseline %.2f %% (%s)",
            fam,
            ev.statistics("network", ev.metric_names[0]).mean,
            ev.statistics("baseline", ev.metric_names[0]).mean,
            ev.criteria[0].label,
        )
        out.append(FamilyHoldout(fam, len(train_idx), ev, seconds))
    return out
