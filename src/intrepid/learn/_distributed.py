"""The protocol's runs as Ray tasks: one machine's cores or GPUs, or a cluster (extra ``intrepid-rt[ray]``).

Each run is a Ray task that reserves ``cpus_per_run`` CPUs (and ``gpus_per_run`` GPUs, fractional values
share a GPU). The working arrays go once into Ray's object store and every task reads them from there, so no
worker reads or resamples an image. Tasks write their files into the run folder, which must therefore be on
a file system that every node sees (a shared disk, or a single machine).

Fault tolerance: a task whose worker or node dies is retried by Ray (``max_retries`` times) on another
worker; it finds the checkpoint of its last completed epoch (:mod:`intrepid.learn._checkpoint`) and continues
from there. A protocol stopped altogether resumes with ``intrepid train --resume RUN`` (with or without Ray).

Costs (measured on a 2-core machine, ray 2.60): starting a local Ray instance takes about 5 s and each task
adds about 1 s of scheduling and start-up, so local execution stays the default; Ray pays off with several
GPUs or nodes, or on a GPU shared by several concurrent runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from intrepid.errors import IntrepidError, ParameterError

if TYPE_CHECKING:  # pragma: no cover
    from intrepid.learn._runs import RunContext, RunSpec

__all__ = ["RayOptions", "execute_runs_on_ray", "ray_map"]

T = TypeVar("T")
R = TypeVar("R")

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RayOptions:
    """How to use Ray.

    Parameters
    ----------
    address : str, optional
        ``None``: start a local Ray instance (and stop it afterwards); ``"auto"``: join the cluster this
        machine belongs to; ``"HOST:PORT"`` or ``"ray://HOST:PORT"``: join that cluster.
    cpus_per_run : float
        CPUs reserved by each run (> 0).
    gpus_per_run : float
        GPUs reserved by each run (>= 0; e.g. 0.125 runs eight trainings concurrently on one GPU).
    max_retries : int
        How often Ray re-executes a run whose worker died (>= 0).
    num_cpus : int, optional
        CPUs of a local instance (default: all of this machine's).
    """

    address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    max_retries: int = 3
    num_cpus: int | None = None

    def __post_init__(self) -> None:
        if not self.cpus_per_run > 0:
            raise ParameterError(f"cpus_per_run must be > 0, got {self.cpus_per_run}")
        if not self.gpus_per_run >= 0:
            raise ParameterError(f"gpus_per_run must be >= 0, got {self.gpus_per_run}")
        if self.max_retries < 0:
            raise ParameterError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ParameterError(f"num_cpus must be >= 1, got {self.num_cpus}")


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise IntrepidError(
            "Ray is not installed: pip install 'intrepid-rt[ray]' (or run without --ray)"
        ) from exc
    return ray


def _connect(ray: Any, options: RayOptions) -> bool:
    """Initialise Ray as ``options`` say unless it already is; whether this call started it."""
    if ray.is_initialized():
        return False
    try:
        if options.address is None:
            ray.init(
                num_cpus=options.num_cpus,
                include_dashboard=False,
                log_to_driver=False,
                configure_logging=False,
            )
            return True
        ray.init(address=options.address, log_to_driver=False, configure_logging=False)
        return False
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
        where = options.address or "a local instance"
        raise IntrepidError(f"cannot start or join Ray at {where}: {exc}") from exc


def ray_map(
    func: Callable[..., R],
    items: Sequence[T],
    options: RayOptions,
    *,
    shared: Any = None,
    describe: Callable[[T], str] = str,
    progress: bool = True,
    desc: str = "tasks (ray)",
) -> list[R]:
    """``[func(item) for item in items]`` as Ray tasks, results in the order of ``items``.

    Batch jobs (simulating data sets, predicting or reconstructing many studies) use it. ``func`` must be
    importable by name (a module-level function); with ``shared`` (put once in the object store) it is
    called as ``func(item, shared)``. Tasks are retried ``options.max_retries`` times when their worker dies.

    Raises
    ------
    IntrepidError
        Ray missing or unreachable; an item whose task raised (named with ``describe(item)``, the first line
        of its error), after the others finished.
    """
    from tqdm.auto import tqdm

    ray = _import_ray()
    started_here = _connect(ray, options)
    try:
        remote = ray.remote(
            num_cpus=options.cpus_per_run,
            num_gpus=options.gpus_per_run,
            max_retries=options.max_retries,
            retry_exceptions=False,
        )(_call)
        shared_ref = ray.put(shared) if shared is not None else None
        refs = [remote.remote(func, item, shared_ref) for item in items]
        results: list[Any] = [None] * len(refs)
        index = {ref: n for n, ref in enumerate(refs)}
        failures: list[str] = []
        bar = tqdm(total=len(refs), desc=desc, unit="task", disable=not progress)
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                n = index[ref]
                try:
                    results[n] = ray.get(ref)
                except Exception as exc:
                    cause = getattr(exc, "cause", None) or exc
                    text = str(cause).strip().splitlines()
                    failures.append(f"{describe(items[n])}: {text[-1] if text else type(cause).__name__}")
                bar.update(1)
        bar.close()
        if failures:
            more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
            raise IntrepidError(f"{failures[0]}{more}")
        return results
    finally:
        if started_here:
            ray.shutdown()


def _call(func: Callable[..., Any], item: Any, shared: Any) -> Any:
    """Body of a :func:`ray_map` task."""
    return func(item) if shared is None else func(item, shared)


def _ray_run(ctx: RunContext, chunk: list[RunSpec]) -> int:
    """Body of one Ray task (module level, so that workers import it by name): one run or a stack."""
    from intrepid.learn._runs import execute_chunk

    execute_chunk(ctx, chunk, progress=False)
    return len(chunk)


def execute_runs_on_ray(
    ctx: RunContext,
    specs: Sequence[RunSpec],
    options: RayOptions,
    *,
    progress: bool = True,
    stack: int = 1,
) -> None:
    """Execute ``specs`` as Ray tasks (one task per run, or per stack of ``stack`` runs) and wait for all.

    Raises
    ------
    IntrepidError
        Ray missing, the cluster unreachable, or a run that failed after all its retries (its name and
        Ray's reason in the message; the runs that finished keep their files, ``--resume`` continues).
    """
    from tqdm.auto import tqdm

    ray = _import_ray()
    started_here = _connect(ray, options)
    try:
        ctx_ref = ray.put(ctx)
        task = ray.remote(
            num_cpus=options.cpus_per_run,
            num_gpus=options.gpus_per_run,
            max_retries=options.max_retries,
            retry_exceptions=False,
        )(_ray_run)
        from intrepid.learn._runs import stacks

        refs = {task.remote(ctx_ref, chunk): chunk for chunk in stacks(specs, stack)}
        bar = tqdm(total=len(specs), desc="runs (ray)", unit="run", disable=not progress)
        waiting = list(refs)
        while waiting:
            done, waiting = ray.wait(waiting, num_returns=1)
            for ref in done:
                chunk = refs[ref]
                try:
                    ray.get(ref)
                except Exception as exc:
                    raise IntrepidError(
                        f"run {chunk[0].label} failed on Ray after {options.max_retries} retries: "
                        f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
                    ) from exc
                bar.update(len(chunk))
        bar.close()
    finally:
        if started_here:
            ray.shutdown()
