"""Settings: each one is documented where operators look for it."""

from app.config import Settings
from tests.support import REPO_ROOT


def test_every_setting_is_in_the_readme_configuration_table():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    table = readme[readme.index("## Configuration") :].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| `DARKROOM_")]

    missing = [
        f"DARKROOM_{name.upper()}"
        for name in Settings.model_fields
        if not any(f"`DARKROOM_{name.upper()}`" in row.split(" | ")[0] for row in rows)
    ]

    assert missing == []
