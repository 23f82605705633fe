"""Load: 50 fractions ingested concurrently while 10 clients read pages; no request over 2 s, none lost.

Loopback only, with the fast linear predictor (the server's behaviour under concurrent ingest and reads is
what is measured, not the model); each client reads a page, pauses ``THINK_S`` and reads the next. The
slowest request and the totals are printed with ``-s``. Marked slow: the ingest of 50 fractions (a figure
each) takes minutes on a shared 2-core machine.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from intrepid.app import AppConfig, create_app
from intrepid.app._db import Fraction, Result

from .conftest import LiveServer, linear_predictor, write_epid

httpx = pytest.importorskip("httpx", reason="the load test needs httpx (dev extra)")

N_FRACTIONS = 50
N_CLIENTS = 10
MAX_REQUEST_S = 2.0
THINK_S = 0.1
INGEST_WORKERS = 2


@pytest.mark.slow
def test_concurrent_ingest_and_reads(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    for k in range(1, N_FRACTIONS + 1):
        write_epid(drop / f"f{k:02d}.dcm", fraction=k, scale=1.0 + 0.001 * (k % 7))
    app = create_app(AppConfig(data_dir=tmp_path / "data", figure_processes=2), predictor=linear_predictor)
    state = app.state.intrepid
    timings: list[tuple[float, str]] = []
    errors: list[str] = []
    done = threading.Event()

    def reader(i: int, base: str) -> None:
        paths = ["/", "/api/worklist", "/fractions/1", "/plans/1", "/quarantine"]
        with httpx.Client(base_url=base, timeout=30) as c:
            k = i
            while not done.is_set():
                path = paths[k % len(paths)]
                t = time.perf_counter()
                r = c.get(path)
                timings.append((time.perf_counter() - t, path))
                if r.status_code not in (200, 404):  # 404 only before fraction / plan 1 exists
                    errors.append(f"{path}: {r.status_code}")
                k += 1
                time.sleep(THINK_S)

    with LiveServer(app) as server:
        clients = [threading.Thread(target=reader, args=(i, server.url)) for i in range(N_CLIENTS)]
        for t in clients:
            t.start()
        t0 = time.perf_counter()
        outcomes = state.ingestor.ingest_paths([drop], workers=INGEST_WORKERS)
        ingest_s = time.perf_counter() - t0
        time.sleep(0.5)
        done.set()
        for t in clients:
            t.join(timeout=30)
    assert not errors, errors[:5]
    assert [o.status for o in outcomes] == ["ingested"] * N_FRACTIONS
    with state.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Fraction)) == N_FRACTIONS
        assert s.scalar(select(func.count()).select_from(Result)) == N_FRACTIONS
    slowest, where = max(timings)
    ordered = sorted(t for t, _ in timings)
    p50, p99 = ordered[len(ordered) // 2], ordered[int(0.99 * (len(ordered) - 1))]
    sys.stdout.write(
        f"\n{len(timings)} requests by {N_CLIENTS} clients during {ingest_s:.1f} s of ingest "
        f"({N_FRACTIONS} fractions, {INGEST_WORKERS} workers); median {p50:.3f} s, "
        f"99th percentile {p99:.3f} s, slowest {slowest:.3f} s ({where})\n"
    )
    assert len(timings) > N_CLIENTS
    assert slowest < MAX_REQUEST_S, f"slowest request {slowest:.2f} s on {where}"
