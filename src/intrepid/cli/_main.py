"""Entry point of the ``intrepid`` command: builds the parser from the sub-command modules and runs one.

Each sub-command lives in its own module ``intrepid.cli._<name>`` exposing ``register(subparsers)``; the
module is listed in :data:`COMMAND_MODULES`. Heavy imports happen inside the command's ``run`` function, so
``intrepid --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from intrepid import __version__
from intrepid.errors import IntrepidError

__all__ = ["COMMAND_MODULES", "build_parser", "main", "name_flags"]

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


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``intrepid gamma: error: argument --dta: ...``) plus a
    pointer to ``--help``, instead of the usage block followed by the message."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._flag_of: dict[str, str] = {}
        super().__init__(*args, **kwargs)
        # the innermost sub-command's name and flags, for runtime error lines
        self.set_defaults(_prog=self.prog, _flag_of=self._flag_of)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.option_strings:
            self._flag_of[action.dest] = max(action.option_strings, key=len)
        return action

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser of ``intrepid``."""
    parser = _Parser(
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


class _PublicNameFormatter(logging.Formatter):
    """Shows the public package of a record (``intrepid.devices``), not its private module
    (``intrepid.devices._aperture``): users see the names they can import."""

    def format(self, record: logging.LogRecord) -> str:
        parts = record.name.split(".")
        public = ".".join(p for p in parts if not p.startswith("_")) or record.name
        if public == record.name:
            return super().format(record)
        original = record.name
        record.name = public
        try:
            return super().format(record)
        finally:
            record.name = original


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    for old in [h for h in _log.handlers if isinstance(h, _StderrHandler)]:
        _log.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(_PublicNameFormatter("%(levelname)s %(name)s: %(message)s"))
    _log.addHandler(handler)
    _log.setLevel(level)


def name_flags(message: str, flag_of: dict[str, str]) -> str:
    """Replace the library's parameter names in an error message by the flags the user typed.

    ``flag_of`` maps a parameter name (an argparse ``dest`` such as ``mesh_spacing``, or a library name
    that a command declares with ``set_defaults(param_flags={"min_spacing_mm": "--mesh-spacing"})``) to
    its flag. Only a name used as the subject of a rule (``name must``, ``name =``, ``name is``) is replaced.

    >>> name_flags("min_spacing_mm must be > 0, got -1", {"min_spacing_mm": "--mesh-spacing"})
    '--mesh-spacing must be > 0, got -1'
    """
    for name, flag in flag_of.items():
        message = re.sub(rf"(?<![\w-]){re.escape(name)}(?= must| =| is| should|:)", flag, message)
    return message


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``intrepid`` with ``argv`` (default: ``sys.argv[1:]``) and return the exit status.

    Errors become one line on stderr that names the file, tag or parameter, and a non-zero status; ``-v``
    adds the traceback.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # argparse: --help / --version (0) or a bad flag (2, message already printed)
        return int(exc.code or 0) if not isinstance(exc.code, str) else 2
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
        prog = getattr(args, "_prog", None) or f"intrepid {args.command}"
        message = name_flags(message, {**getattr(args, "_flag_of", {}), **getattr(args, "param_flags", {})})
        sys.stderr.write(f"{prog}: error: {message}\n")
        return 1
    except ImportError as exc:  # an optional dependency group is not installed
        missing = getattr(exc, "name", None) or str(exc)
        extra = {"torch": "ml", "safetensors": "ml", "mkdocs": "docs"}.get(str(missing).split(".")[0], "ml")
        sys.stderr.write(
            f"{getattr(args, '_prog', 'intrepid')}: error: this command needs the optional package "
            f"{missing!r}; install the '{extra}' extra: python3 -m pip install -e \".[{extra}]\"\n"
        )
        return 1
    except MemoryError:
        sys.stderr.write(f"{getattr(args, '_prog', 'intrepid')}: error: not enough memory for this input\n")
        return 1
    except KeyboardInterrupt:  # pragma: no cover - interactive
        sys.stderr.write("interrupted\n")
        return 130
    except Exception as exc:  # a defect of ours: still one line (the fuzz suite asserts it never happens)
        if args.verbose:
            _log.exception("command failed")
        sys.stderr.write(
            f"{getattr(args, '_prog', 'intrepid')}: internal error: {type(exc).__name__}: {exc} "
            "(please report it; -v shows the traceback)\n"
        )
        return 70
    return int(status or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
