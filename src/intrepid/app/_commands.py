"""The review application's commands, ``intrepid serve`` and ``intrepid ingest``.

The application sits beside the command line (layer 8), so it contributes its own sub-commands: this module is
named in :data:`intrepid.cli._main.COMMAND_MODULES` and loaded by name like every other command module; the
web stack (FastAPI, SQLAlchemy, uvicorn) is imported only when a command runs.
"""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run_ingest", "run_serve"]

_log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add ``ingest`` and ``serve`` to the ``intrepid`` parser."""
    register_ingest(subparsers)
    register_serve(subparsers)


def write_json(data: Any) -> None:
    """Print ``data`` as indented strict JSON on stdout (non-finite numbers as null)."""

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    sys.stdout.write(json.dumps(clean(data), indent=2, allow_nan=False) + "\n")


def register_ingest(subparsers: Any) -> None:
    """Add ``ingest`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "ingest",
        help="ingest DICOM (EPID RT Images, references, CT/RTPLAN/RTSTRUCT/RTDOSE) into the review database",
        description=(
            "Group DICOM files by patient / plan / fraction / beam, predict each EPID image's "
            "portal dose (Gy) "
            "with the shipped model, compare it with the beam's reference (uploaded portal dose, "
            "else the first "
            "fraction) by global gamma and the isocentre ratio, and store the results for `intrepid serve`. "
            "Files that fail are quarantined with the reason; re-ingesting is idempotent (files are hashed). "
            "Needs the app extra: pip install 'intrepid-rt[app]'."
        ),
    )
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="DICOM files or folders (recursive)")
    p.add_argument(
        "--data",
        type=Path,
        default=Path("intrepid-data"),
        help="data folder (default ./intrepid-data): stored files, figures, SQLite database",
    )
    p.add_argument(
        "--db",
        default=None,
        help="database URL (default: SQLite in the data folder), e.g. postgresql://user@host/intrepid",
    )
    p.add_argument(
        "--predictor",
        choices=("network", "baseline"),
        default="network",
        help="portal-dose model: the shipped network (default) or the kernel baseline",
    )
    p.add_argument("--workers", type=int, default=1, help="files processed at once (default 1)")
    p.add_argument("--json", action="store_true", help="print one outcome per file as JSON")
    p.set_defaults(func=run_ingest)


def run_ingest(args: argparse.Namespace) -> int:
    """Run ``intrepid ingest``; exit status 1 when a file was quarantined."""
    from intrepid.app import open_ingestor

    if args.workers < 1:
        sys.stderr.write(f"intrepid ingest: --workers must be >= 1, got {args.workers}\n")
        return 2
    ingestor = open_ingestor(args.data, args.db, predictor_kind=args.predictor)
    outcomes = ingestor.ingest_paths(args.paths, workers=args.workers)
    counts: dict[str, int] = {}
    for o in outcomes:
        counts[o.status] = counts.get(o.status, 0) + 1
    if args.json:
        write_json({"data": str(args.data), "counts": counts, "files": [o.to_dict() for o in outcomes]})
    else:
        for o in outcomes:
            reason = f" ({o.reason})" if o.reason else ""
            sys.stdout.write(f"{o.status:<12} {o.path}{reason}\n")
        sys.stdout.write(", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + "\n")
    return 1 if counts.get("quarantined") else 0


def register_serve(subparsers: Any) -> None:
    """Add ``serve`` to the ``intrepid`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="the review web application in a browser (needs the app extra)",
        description=(
            "Serve the review application: a work list of delivered fractions (alerts first), per "
            "fraction and "
            "beam the EPID, predicted and reference portal dose (mGy), difference and gamma maps "
            "zoomed to the "
            "field, profiles and settings, per plan the trend with action levels, approve / "
            "comment / escalate. "
            "Binds 127.0.0.1 by default; any other --host requires sign-in (create accounts with "
            "--add-user). "
            "Needs the app extra: pip install 'intrepid-rt[app]'."
        ),
    )
    p.add_argument(
        "--data",
        type=Path,
        default=Path("intrepid-data"),
        help="data folder (default ./intrepid-data): stored files, figures, SQLite database, secret",
    )
    p.add_argument(
        "--db",
        default=None,
        help="database URL (default: SQLite in the data folder), e.g. postgresql://user@host/intrepid",
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument(
        "--watch",
        type=Path,
        default=None,
        metavar="DIR",
        help="ingest new DICOM files dropped into DIR (polled every 2 s)",
    )
    p.add_argument(
        "--demo",
        action="store_true",
        help="first simulate and ingest a demo course (one phantom patient, 2 beams, 4 fractions, "
        "an 8 %% MU error in fraction 3) into the data folder (default ./intrepid-demo-data)",
    )
    p.add_argument("--auth", action="store_true", help="require sign-in even on loopback")
    p.add_argument(
        "--levels",
        type=Path,
        default=None,
        help="action levels as JSON (keys of intrepid.report.ActionLevels; default SOFTDISO)",
    )
    p.add_argument(
        "--predictor",
        choices=("network", "baseline"),
        default="network",
        help="portal-dose model of the ingest (default: the shipped network)",
    )
    p.add_argument(
        "--add-user",
        metavar="NAME",
        default=None,
        help="create or reset an account (password from $INTREPID_PASSWORD or prompted) and exit",
    )
    p.set_defaults(func=run_serve)


def _add_user(args: argparse.Namespace, name: str) -> int:
    from sqlalchemy import select

    from intrepid.app._db import User, make_engine, migrate, session_factory
    from intrepid.app._security import hash_password

    password = os.environ.get("INTREPID_PASSWORD") or getpass.getpass(f"password for {name}: ")
    if len(password) < 8:
        sys.stderr.write("intrepid serve: --add-user needs a password of at least 8 characters\n")
        return 2
    args.data.mkdir(parents=True, exist_ok=True)
    engine = make_engine(args.db or f"sqlite:///{(args.data / 'intrepid.sqlite').resolve()}")
    migrate(engine)
    with session_factory(engine)() as s:
        user = s.scalar(select(User).where(User.username == name))
        if user is None:
            s.add(User(username=name, password_hash=hash_password(password)))
        else:
            user.password_hash = hash_password(password)
        s.commit()
    sys.stdout.write(f"account {name!r} saved\n")
    return 0


def run_serve(args: argparse.Namespace) -> int:
    """Run ``intrepid serve``."""
    from intrepid.errors import ParameterError
    from intrepid.report import DEFAULT_ACTION_LEVELS, ActionLevels

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError:
        sys.stderr.write("intrepid serve: needs the app extra: pip install 'intrepid-rt[app]'\n")
        return 2
    from intrepid.app._security import is_loopback
    from intrepid.app._server import AppConfig, create_app

    if args.demo and args.data == Path("intrepid-data"):
        args.data = Path("intrepid-demo-data")
    if args.add_user:
        return _add_user(args, args.add_user)
    levels = DEFAULT_ACTION_LEVELS
    if args.levels is not None:
        try:
            levels = ActionLevels.from_dict(json.loads(args.levels.read_text(encoding="utf-8")))
        except (OSError, json.JSONDecodeError, TypeError) as exc:
            raise ParameterError(f"--levels {args.levels}: not a readable JSON object ({exc})") from exc
    if args.watch is not None and not args.watch.is_dir():
        raise ParameterError(f"--watch {args.watch}: no such folder")
    config = AppConfig(
        data_dir=args.data,
        db_url=args.db,
        host=args.host,
        require_auth=True if args.auth else None,
        levels=levels,
        predictor_kind=args.predictor,
        watch_dir=args.watch,
    )
    if args.demo:
        from intrepid.app._demo import populate_demo

        populate_demo(config)
    app = create_app(config)
    if not is_loopback(args.host):
        sys.stderr.write(
            f"serving on {args.host}: sign-in required (accounts: intrepid serve --add-user NAME)\n"
        )
    sys.stderr.write(f"InTrEPID review: http://{args.host}:{args.port}/  (data: {args.data})\n")
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
