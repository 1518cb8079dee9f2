"""The container files (issue 26): what can be checked without a container runtime. Building
the image and running compose.yaml is `deploy/check_container.sh`, by hand."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kennel.core.settings import unknown_variables

ROOT = Path(__file__).parent.parent
KENNELS = ("kennel-a", "kennel-b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def dockerfile() -> str:
    # One instruction a line: continuations joined.
    return re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())


def _install_line(text: str) -> str:
    found = re.search(r"python3 -m venv \.venv && \.venv/bin/pip install -q -e \S+", text)
    assert found, "no `python3 -m venv .venv && .venv/bin/pip install ...` in the text"
    return found.group(0)


def test_the_image_installs_as_the_readme_says(dockerfile: str) -> None:
    readme_first_line = (ROOT / "README.md").read_text().split("```sh\n", 1)[1].splitlines()[0]
    assert _install_line(dockerfile) == _install_line(readme_first_line)


def test_the_image_runs_kennel_serve_unprivileged_with_a_health_check(dockerfile: str) -> None:
    instructions = [line.split(None, 1) for line in dockerfile.splitlines() if line.strip()]
    by_name: dict[str, list[str]] = {}
    for name, *rest in instructions:
        if not name.startswith("#"):
            by_name.setdefault(name, []).append(rest[0] if rest else "")
    assert by_name["ARG"][0] == "BASE_IMAGE=python:3.11-slim"
    assert by_name["FROM"] == ["${BASE_IMAGE}"]
    assert by_name["USER"][-1] not in ("root", "0")
    assert by_name["CMD"] == ['["kennel", "serve"]']
    assert by_name["VOLUME"] == ["/data"]
    assert "/readyz" in by_name["HEALTHCHECK"][0]
    # Every KENNEL_* the image sets is a setting (a typo would be ignored with a warning).
    names = re.findall(r"\b(KENNEL_[A-Z_]+)=", " ".join(by_name["ENV"]))
    assert "KENNEL_HOST" in names
    assert unknown_variables(dict.fromkeys(names, "")) == []


def test_two_kennels_share_only_the_database(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", "migrate", *KENNELS}
    envs = [services[name]["environment"] for name in KENNELS]
    assert envs[0]["KENNEL_DATABASE_URL"] == envs[1]["KENNEL_DATABASE_URL"]
    assert envs[0]["KENNEL_DATABASE_URL"].startswith("postgresql://kennel:")
    assert "@postgres:5432/kennel" in envs[0]["KENNEL_DATABASE_URL"]
    assert envs[0]["KENNEL_EXECUTOR_ID"] != envs[1]["KENNEL_EXECUTOR_ID"]
    volumes = [set(services[name]["volumes"]) for name in KENNELS]
    assert not volumes[0] & volumes[1]
    published = [p.rsplit(":", 2)[-2] for name in KENNELS for p in services[name]["ports"]]
    assert len(published) == len(set(published)) == 4  # an HTTP and an SMTP port each
    for name in KENNELS:
        ports = services[name]["ports"]
        assert any(p.endswith(":8000") for p in ports)
        assert any(p.endswith(":2525") for p in ports)
        assert services[name]["depends_on"] == {
            "migrate": {"condition": "service_completed_successfully"}
        }
        assert unknown_variables(services[name]["environment"]) == []


def test_the_schema_is_migrated_once_after_postgres_is_healthy(compose: dict[str, Any]) -> None:
    migrate = compose["services"]["migrate"]
    assert migrate["command"] == ["kennel", "db", "upgrade"]
    assert migrate["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(compose["services"]["postgres"]["healthcheck"]["test"])
