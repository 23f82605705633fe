"""The ``intrepid`` command line. Only this package touches ``sys.argv``, exit codes and the console."""

from intrepid.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
