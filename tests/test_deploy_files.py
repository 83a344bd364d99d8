"""The deployment files (Dockerfile, docker-compose.yml, .env.example): no container engine runs
here, so what can be checked without one is: every DARKROOM_* variable they set is a real
setting and the values they set load; every long-running service has a healthcheck; the API and
the workers start only once their dependencies are healthy and the one-shot set-up is done."""

import re
from pathlib import Path

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_FILES = ["Dockerfile", "docker-compose.yml", ".env.example"]
SUBSTITUTION = re.compile(r"\$\{(\w+)[^}]*\}")
DARKROOM_SERVICES = ("api", "worker")


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def example_environment() -> dict[str, str]:
    """The variables .env.example sets (commented-out ones are left unset)."""
    lines = (ROOT / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {name.strip(): value.strip() for name, value in pairs}


def one_shot(service: dict) -> bool:
    return service.get("restart") == "no"


@pytest.mark.parametrize("name", DEPLOY_FILES)
def test_every_darkroom_variable_is_a_setting(name):
    named = set(re.findall(r"\bDARKROOM_([A-Z0-9_]+)", (ROOT / name).read_text()))

    assert named, f"{name} sets no DARKROOM_* variable"
    assert {variable.lower() for variable in named} <= set(Settings.model_fields)


@pytest.mark.parametrize("service", DARKROOM_SERVICES)
def test_the_settings_a_darkroom_service_gets_load(service, monkeypatch, tmp_path):
    example = example_environment()
    environment = example | {
        name: SUBSTITUTION.sub(lambda match: example[match[1]], str(value))
        for name, value in compose()["services"][service]["environment"].items()
    }
    monkeypatch.chdir(tmp_path)  # no .env of the checkout's
    for name in list(Settings.model_fields):
        monkeypatch.delenv(f"DARKROOM_{name.upper()}", raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.database_url.startswith("postgresql+asyncpg://darkroom:")
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.storage_url == "s3://darkroom-assets/darkroom"
    assert settings.storage_access_key_id == example["DARKROOM_STORAGE_ACCESS_KEY_ID"]
    assert settings.admin_token is None  # off unless the operator sets it


def test_every_long_running_service_has_a_healthcheck():
    services = compose()["services"]

    missing = [
        name
        for name, service in services.items()
        if not one_shot(service) and "test" not in service.get("healthcheck", {})
    ]

    assert len(services) >= 7
    assert missing == []


@pytest.mark.parametrize("service", DARKROOM_SERVICES)
def test_darkroom_starts_after_healthy_dependencies_and_one_shot_set_up(service):
    services = compose()["services"]
    depends_on = services[service]["depends_on"]
    expected = {
        name: ("service_completed_successfully" if one_shot(services[name]) else "service_healthy")
        for name in services
        if name not in DARKROOM_SERVICES
    }

    assert {name: rule["condition"] for name, rule in depends_on.items()} == expected


def test_the_image_runs_unprivileged_with_a_healthcheck_and_the_migrations():
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM ", dockerfile, re.MULTILINE)

    assert len(stages) == 2  # build the wheels, then a slim runtime
    assert re.search(r"^USER darkroom$", dockerfile, re.MULTILINE)
    assert re.search(r"^HEALTHCHECK .*\n?.*/readyz", dockerfile, re.MULTILINE)
    assert "COPY migrations" in dockerfile
