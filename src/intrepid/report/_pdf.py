"""PDF of an HTML report, printed by headless Chromium (Debian's ``chromium``).

The HTML reports carry print styles (each beam / image figure starts a new page), so the printed PDF has one
page per beam. Chromium runs with networking and GPU off, in a throwaway profile folder; nothing of the report
is fetched from elsewhere because the report is self-contained.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from intrepid.dicom._common import atomic_write
from intrepid.errors import IntrepidError, ParameterError

__all__ = ["find_chromium", "write_pdf"]

_log = logging.getLogger(__name__)

#: Where Chromium is looked for, in order, after ``$INTREPID_CHROMIUM``.
_CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser", "google-chrome")


def find_chromium() -> Path | None:
    """The Chromium executable (``$INTREPID_CHROMIUM``, ``/usr/bin/chromium`` or on the PATH), or None."""
    env = os.environ.get("INTREPID_CHROMIUM")
    for cand in ((env,) if env else ()) + _CANDIDATES:
        found = shutil.which(cand)
        if found:
            return Path(found)
    return None


def write_pdf(
    html_path: str | os.PathLike[str],
    pdf_path: str | os.PathLike[str],
    *,
    chromium: str | os.PathLike[str] | None = None,
    timeout_s: float = 120.0,
) -> Path:
    """Print an HTML file to PDF with headless Chromium, atomically.

    Parameters
    ----------
    html_path : path-like
        A self-contained HTML report (:func:`intrepid.report.write_report`).
    pdf_path : path-like
        Output PDF (its folder is created).
    chromium : path-like, optional
        The browser executable (default :func:`find_chromium`).
    timeout_s : float
        Give up after this many seconds.

    Returns
    -------
    Path
        The PDF.

    Raises
    ------
    ParameterError
        The HTML file is missing.
    IntrepidError
        No Chromium found, or it failed / produced no PDF.

    Examples
    --------
    >>> write_pdf("report.html", "report.pdf")  # doctest: +SKIP
    PosixPath('report.pdf')
    """
    src = Path(html_path).resolve()
    if not src.is_file():
        raise ParameterError(f"{html_path}: no such HTML file")
    exe = Path(chromium) if chromium is not None else find_chromium()
    if exe is None:
        raise IntrepidError(
            "no Chromium found for the PDF (install Debian's 'chromium' or set INTREPID_CHROMIUM)"
        )
    out = Path(pdf_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="intrepid-pdf-") as profile:

        def render(tmp: Path) -> None:
            cmd = [
                str(exe), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", "--no-pdf-header-footer",
                f"--user-data-dir={profile}", f"--print-to-pdf={tmp}", src.as_uri(),
            ]
            try:
                proc = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
            except subprocess.TimeoutExpired as exc:
                raise IntrepidError(f"{exe}: printing {src.name} took over {timeout_s:g} s") from exc
            if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
                tail = proc.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
                raise IntrepidError(f"{exe}: could not print {src.name} to PDF ({tail[0]})")

        atomic_write(out, render)
    _log.info("PDF written: %s", out)
    return out
