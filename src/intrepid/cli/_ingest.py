"""``intrepid ingest PATH... [--data DIR] [--db URL]``: DICOM into the review application's database."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``intrepid ingest``; exit status 1 when a file was quarantined."""
    from intrepid.app import open_ingestor
    from intrepid.cli._common import write_json

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
