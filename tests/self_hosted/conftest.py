"""The tiny self-hosted model every test here serves."""

from pathlib import Path

import pytest

from tests.self_hosted.tiny import save_tiny_pipeline


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline's directory, built once per test process."""
    return save_tiny_pipeline(tmp_path_factory.mktemp("tiny-model"))
