"""The wheel: it ships the migrations, and an installed `darkroom migrate` finds and runs them."""

import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from app.cli import head_revision
from app.config import Settings
from tests.support import darkroom_environment

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "app", "migrations"]
IGNORED = shutil.ignore_patterns("__pycache__")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A wheel built from a copy of the sources, so no build directory lands in the checkout."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=IGNORED)
        else:
            shutil.copy(ROOT / name, source / name)
    output = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", output, source],
        check=True,
        timeout=120,
    )
    return next(output.glob("darkroom-*.whl"))


def test_the_wheel_ships_the_migration_environment_and_every_revision(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    revisions = {
        f"migrations/versions/{path.name}" for path in (ROOT / "migrations/versions").glob("*.py")
    }

    assert revisions
    assert revisions | {"migrations/env.py", "migrations/script.py.mako"} <= names


def test_an_installed_wheel_migrates_from_another_directory(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, wheel],
        check=True,
        timeout=120,
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    environment = darkroom_environment(Settings(data_dir=elsewhere / "var"))
    environment["PYTHONPATH"] = str(site)

    result = subprocess.run(
        [site / "bin" / "darkroom", "migrate"],
        cwd=elsewhere,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    located = subprocess.run(
        [sys.executable, "-c", "from app.cli import MIGRATIONS; print(MIGRATIONS)"],
        cwd=elsewhere,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert located.stdout.strip() == str(site / "migrations")
    database = sqlite3.connect(elsewhere / "var" / "darkroom.db")
    assert database.execute("SELECT version_num FROM alembic_version").fetchall() == [
        (head_revision(),)
    ]
