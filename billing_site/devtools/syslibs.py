"""The operating-system libraries WeasyPrint needs: check, and install where we can.

WeasyPrint renders our PDFs with Pango (text layout), HarfBuzz (shaping; its
subset library keeps the embedded fonts small) and fontconfig with at least one
installed font family. They are the only things outside the virtualenv we need.
"""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class SystemLibrary:
    name: str  # as ctypes.util.find_library knows it
    debian_package: str
    purpose: str


LIBRARIES = (
    SystemLibrary("gobject-2.0", "libglib2.0-0", "GLib objects for Pango"),
    SystemLibrary("pango-1.0", "libpango-1.0-0", "text layout"),
    SystemLibrary("pangoft2-1.0", "libpangoft2-1.0-0", "Pango's FreeType fonts"),
    SystemLibrary("harfbuzz", "libharfbuzz0b", "text shaping"),
    SystemLibrary("harfbuzz-subset", "libharfbuzz-subset0", "font subsetting in PDFs"),
    SystemLibrary("fontconfig", "libfontconfig1", "font discovery"),
)
FONT_PACKAGE = "fonts-dejavu-core"


def missing_libraries(find: Callable[[str], str | None] = ctypes.util.find_library) -> list:
    return [library for library in LIBRARIES if not find(library.name)]


def fonts_installed(run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> bool:
    """True when fontconfig knows at least one font family."""
    if not shutil.which("fc-list"):
        # fontconfig's tools are optional; the library finds fonts under these folders.
        return any(
            os.path.isdir(path) and any(os.scandir(path))
            for path in ("/usr/share/fonts", "/usr/local/share/fonts")
        )
    result = run(["fc-list", ":", "family"], capture_output=True, text=True, check=False)
    return bool(result.stdout.strip())


def packages_to_install(find: Callable[[str], str | None] = ctypes.util.find_library) -> list[str]:
    packages = [library.debian_package for library in missing_libraries(find)]
    if not fonts_installed():
        packages += [FONT_PACKAGE, "fontconfig"]
    return sorted(set(packages))


def install_command(packages: list[str]) -> str:
    return "sudo apt-get install -y " + " ".join(packages)


def ensure(log: Callable[[str], None] = print) -> bool:
    """Make sure the libraries are present; return False (after one clear line) if not."""
    packages = packages_to_install()
    if not packages:
        return True
    can_install = os.geteuid() == 0 and shutil.which("apt-get")
    if can_install:
        log(f"Installing system libraries for PDF rendering: {' '.join(packages)}")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
        result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            # A fresh container often has empty package lists; refresh once and retry.
            subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, check=False)
            result = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if result.returncode == 0 and not packages_to_install():
            return True
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or [""]
        log(f"error: installing {' '.join(packages)} failed ({detail[0]})")
    log(
        "error: WeasyPrint needs system libraries that are missing; install them with: "
        + install_command(packages)
    )
    return False
