"""Compile the gettext catalogs under locale/ with polib (no GNU gettext needed)."""

from __future__ import annotations

from pathlib import Path

from billing_site.devtools.paths import BASE_DIR


def compile_catalogs(locale_dir: Path = BASE_DIR / "locale") -> list[Path]:
    """Write each .mo next to its .po when missing or older; return the files written."""
    import polib

    written = []
    for po_path in sorted(locale_dir.glob("*/LC_MESSAGES/*.po")):
        mo_path = po_path.with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        polib.pofile(str(po_path)).save_as_mofile(str(mo_path))
        written.append(mo_path)
    return written
