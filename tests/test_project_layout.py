"""The repository keeps its promises: locked dependencies, compiled catalogs, no CDN."""

from __future__ import annotations

import re
import tomllib

import polib
import pytest
from django.conf import settings
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.conftest import BASE_DIR


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in (BASE_DIR / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def test_every_declared_dependency_is_locked_within_its_range():
    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = locked_versions()

    for spec in declared:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not in requirements.lock"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"


@pytest.mark.parametrize("language", [code for code, _name in settings.LANGUAGES if code != "en"])
def test_every_language_catalog_is_complete(language):
    catalog = polib.pofile(str(BASE_DIR / "locale" / language / "LC_MESSAGES" / "django.po"))

    assert catalog.untranslated_entries() == []
    assert catalog.fuzzy_entries() == []
    assert (BASE_DIR / "locale" / language / "LC_MESSAGES" / "django.mo").exists()


def test_templates_load_nothing_from_other_hosts():
    offenders = []
    for template in (BASE_DIR / "templates").rglob("*.html"):
        tags = re.findall(r"<(?:script|link|img)\b[^>]*>", template.read_text())
        offenders += [
            f"{template.name}: {tag}" for tag in tags if re.search(r'="(https?:)?//', tag)
        ]

    assert offenders == []
