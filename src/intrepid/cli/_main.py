"""Entry point of the ``intrepid`` command: builds the parser from the sub-command modules and runs one.

Each sub-command lives in its own module ``intrepid.cli._<name>`` exposing ``register(subparsers)``; the
module is listed in :data:`COMMAND_MODULES`. Heavy imports happen inside the command's ``run`` function, so
``intrepid --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from intrepid import __version__
from intrepid.errors import IntrepidError

__all__ = ["COMMAND_MODULES", "build_parser", "main"]

#: Modules that register sub-commands, in the order they appear in ``intrepid --help``.
COMMAND_MODULES: tuple[str, ...] = (
    "intrepid.cli._demo",
    "intrepid.cli._info",
    "intrepid.cli._resample",
    "intrepid.cli._gamma",
    "intrepid.cli._dvh",
    "intrepid.cli._isodose",
    "intrepid.cli._profile",
    "intrepid.cli._simulate",
    "intrepid.cli._train",
    "intrepid.cli._predict",
    "intrepid.cli._evaluate",
    "intrepid.cli._invivo",
    "intrepid.cli._aperture",
    "intrepid.cli._compensator",
    "intrepid.cli._dose",
    "intrepid.app._commands",
)

_log = logging.getLogger("intrepid")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``intrepid``."""
    parser = argparse.ArgumentParser(
        prog="intrepid",
        description=(
            "InTrEPID: radiotherapy dose verification (EPID transit dosimetry, gamma, DVH) and proton "
            "beam-device design. Units: mm, Gy, degrees; world coordinates in the DICOM patient frame (LPS)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"intrepid {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0,
        help="more logging (-v: info and tracebacks on error, -vv: debug)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is at the time of each record (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:  # StreamHandler.__init__ assigns it
        pass


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    for old in [h for h in _log.handlers if isinstance(h, _StderrHandler)]:
        _log.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``intrepid`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Errors become one line on stderr that names the file, tag or parameter, and a non-zero status; ``-v``
    adds the traceback.
    """
    parser = build_parser()
    args = parser.parse_args(list(argv) if argv is not None else None)
    _configure_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        status = args.func(args)
    except BrokenPipeError:  # output piped into `head` and the like: not an error of ours
        sys.stderr.close()
        return 0
    except (IntrepidError, OSError, ValueError) as exc:
        if args.verbose:
            _log.exception("command failed")
        message = str(exc) if not isinstance(exc, OSError) or not exc.filename else (
            f"{exc.filename}: {exc.strerror or exc}"
        )
        sys.stderr.write(f"intrepid {args.command}: error: {message}\n")
        return 1
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.stderr.write("interrupted\n")
        return 130
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
