"""MkDocs hook: publish every top-level ``docs/*.md`` page, even one that ``mkdocs.yml`` does not list.

Several engineers add pages (``docs/gamma.md``, ``docs/dose.md``...) in parallel branches; a page missing from
``nav`` would otherwise fail the strict build (``omitted_files: warn``). This hook appends such pages under a
"More guides" section, titled by their first ``# heading``, so that adding a page never breaks the build; list
the page in ``nav`` to place it where it belongs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _listed(nav: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(nav, str):
        found.add(nav)
    elif isinstance(nav, list):
        for item in nav:
            found |= _listed(item)
    elif isinstance(nav, dict):
        for value in nav.values():
            found |= _listed(value)
    return found


def _title(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("-", " ").replace("_", " ").capitalize()


def on_config(config: Any, **kwargs: Any) -> Any:
    """Append the unlisted top-level pages to the navigation."""
    nav = config.get("nav")
    if not nav:
        return config
    listed = _listed(nav)
    docs = Path(config["docs_dir"])
    extra = [
        {_title(p): p.name}
        for p in sorted(docs.glob("*.md"))
        if p.name not in listed and not p.name.startswith("_")
    ]
    if extra:
        nav.append({"More guides": extra})
    return config
