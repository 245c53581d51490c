"""WeasyPrint's system libraries are found, or the setup names the command to install them."""

from __future__ import annotations

import weasyprint

from billing_site.devtools import syslibs


def test_pdf_rendering_works_with_the_installed_libraries():
    pdf = weasyprint.HTML(string="<h1>Faktura č. 2026001 — Фактура</h1>").write_pdf()

    assert pdf.startswith(b"%PDF-")
    assert syslibs.packages_to_install() == []


def test_a_missing_library_is_named_with_its_debian_package():
    def find(name: str) -> str | None:
        return None if name == "harfbuzz-subset" else f"lib{name}.so"

    packages = syslibs.packages_to_install(find)

    assert "libharfbuzz-subset0" in packages
    assert syslibs.install_command(packages).startswith("sudo apt-get install -y ")
    assert "libpango-1.0-0" not in packages
