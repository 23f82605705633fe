"""Fixtures of the review application's tests: synthetic RT Images, a fast linear predictor, a live server
on loopback, and a throwaway PostgreSQL cluster (skipped with the reason where it cannot start)."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

pytest.importorskip("fastapi", reason="the review app needs the app extra: pip install 'intrepid-rt[app]'")
pytest.importorskip("sqlalchemy", reason="the review app needs the app extra: pip install 'intrepid-rt[app]'")

from intrepid.geometry import Quantity, Volume

N = 64
SPACING_MM = 2.0
PATIENT_NAME = "Doe^Secretname"
CALIBRATION_GY_PER_CU = 1e-3


def linear_predictor(epid: Volume) -> Volume:
    """A calibrated linear detector model: portal dose = signal × 1 mGy/CU (fast, exact for these images)."""
    return epid.with_array(
        np.asarray(epid.array, dtype=np.float64) * CALIBRATION_GY_PER_CU,
        quantity=Quantity.PORTAL_DOSE,
        units="Gy",
    )


def field_signal(scale: float = 1.0, width_px: int = 20) -> np.ndarray:
    """A smoothed square field of 200 CU (0.2 Gy after the linear predictor), scaled by ``scale``."""
    a = np.zeros((N, N))
    lo, hi = N // 2 - width_px // 2, N // 2 + width_px // 2
    a[lo:hi, lo:hi] = 200.0
    return gaussian_filter(a, 1.5) * scale


def write_epid(
    path: Path,
    *,
    fraction: int | None,
    beam: int = 1,
    scale: float = 1.0,
    patient_id: str = "PAT-1",
    plan_uid: str = "1.2.826.0.1.3680043.8.498.1",
    quantity: Quantity = Quantity.EPID_SIGNAL,
) -> Path:
    """One synthetic RT Image (generic encoding) of a fraction's beam, or a portal-dose reference."""
    import pydicom

    from intrepid.dicom import Vendor, write_rtimage

    arr = field_signal(scale)
    if quantity is Quantity.PORTAL_DOSE:
        arr = arr * CALIBRATION_GY_PER_CU
    write_rtimage(
        path,
        arr,
        pixel_spacing_mm=SPACING_MM,
        vendor=Vendor.GENERIC,
        quantity=quantity,
        units="Gy" if quantity is Quantity.PORTAL_DOSE else "CU",
        patient_id=patient_id,
        patient_name=PATIENT_NAME,
        study_instance_uid="1.2.826.0.1.3680043.8.498.2",
        referenced_plan_uid=plan_uid,
        referenced_beam_number=beam,
    )
    if fraction is not None:
        ds = pydicom.dcmread(path)
        ds.FractionNumber = fraction
        ds.AcquisitionDate = (dt.date(2026, 1, 5) + dt.timedelta(days=fraction - 1)).strftime("%Y%m%d")
        ds.save_as(path)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving an app on a free loopback port in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 20
        while not self.server.started:
            if time.time() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (initdb + pg_ctl in a temporary folder, trust auth on loopback)."""
    import glob

    extra = os.pathsep.join(sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True))  # Debian's layout
    search = os.pathsep.join(p for p in (os.environ.get("PATH", ""), extra) if p)
    initdb, pg_ctl = shutil.which("initdb", path=search), shutil.which("pg_ctl", path=search)
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) not found; Debian: apt-get install postgresql"
        )
    pytest.importorskip("psycopg", reason="PostgreSQL tests need psycopg (the app extra)")
    prefix: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="intrepid-pg-"))
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the 'postgres' account
        runuser = shutil.which("runuser")
        try:
            import pwd

            pw = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root without a 'postgres' account to run the PostgreSQL server")
        if runuser is None:
            pytest.skip("running as root without runuser to start PostgreSQL as 'postgres'")
        os.chown(folder, pw.pw_uid, pw.pw_gid)
        prefix = [runuser, "-u", "postgres", "--"]
    data, port = folder / "data", free_port()
    try:
        subprocess.run(
            [*prefix, initdb, "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        subprocess.run(
            [
                *prefix,
                pg_ctl,
                "-D",
                str(data),
                "-l",
                str(folder / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off",
                "start",
            ],
            check=True,
            capture_output=True,
            timeout=90,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"could not start a PostgreSQL server: {exc}")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, pg_ctl, "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Debian's Chromium for Playwright (its own browser download is not available)."""
    path = os.environ.get("INTREPID_CHROMIUM", "/usr/bin/chromium")
    if not Path(path).exists():
        pytest.skip(f"browser tests need Chromium at {path} (Debian: apt-get install chromium)")
    pytest.importorskip("playwright", reason="browser tests need the playwright package (dev extra)")
    return path


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class InvivoStudy:
    """A simulated in-vivo fraction ready for ingest (``folder``) and the predictor that stands for a perfect
    InTrEPID-2D step (``predictor``: each EPID image -> the simulator's noise-free portal dose of it)."""

    folder: Path
    predictor: Callable[[Volume], Volume]


@pytest.fixture(scope="session")
def invivo_study(tmp_path_factory: pytest.TempPathFactory) -> InvivoStudy:
    """``intrepid simulate invivo --phantom thorax --plan box4 --seed 1 --spacing-mm 8`` (coarse: the
    whole case takes ~20 s of CPU), without the truth files, with Fraction Number 1 stamped on the transit
    images (the simulator writes none; the application needs it to place them)."""
    import hashlib

    import pydicom

    from intrepid.dicom import read_rtimage
    from intrepid.simulate import InvivoCaseSpec, make_invivo_case, write_invivo_case

    root = tmp_path_factory.mktemp("invivo")
    study = write_invivo_case(
        make_invivo_case(InvivoCaseSpec(site="thorax", plan="box4", seed=1, spacing_mm=8.0)), root / "study"
    )
    folder = root / "ingest"
    shutil.copytree(study, folder, ignore=shutil.ignore_patterns("portal_dose", "delivered*", "case.json"))
    truth: dict[str, np.ndarray] = {}
    for f in sorted((folder / "transit").glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.FractionNumber = 1
        ds.save_as(f)
        epid = np.asarray(read_rtimage(f).image.array)
        dose = read_rtimage(study / "portal_dose" / f.name).image
        truth[hashlib.sha256(epid.tobytes()).hexdigest()] = np.asarray(dose.array, dtype=np.float64)

    def perfect(epid: Volume) -> Volume:
        key = hashlib.sha256(np.asarray(epid.array).tobytes()).hexdigest()
        return epid.with_array(truth[key], quantity=Quantity.PORTAL_DOSE, units="Gy")

    return InvivoStudy(folder, perfect)
