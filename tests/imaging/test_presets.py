"""Export presets and target resolution."""

import pytest

from app.imaging.presets import PRESETS, ExportTarget, resolve_target


def test_every_preset_resolves_to_its_size() -> None:
    for name, (width, height) in PRESETS.items():
        assert resolve_target(name) == ExportTarget(name, width, height)


def test_explicit_size_is_named_by_its_pixels() -> None:
    assert resolve_target((640, 480)) == ExportTarget("640x480", 640, 480)
    assert resolve_target((1, 8192)) == ExportTarget("1x8192", 1, 8192)


def test_unknown_preset_is_rejected_with_the_known_ones_listed() -> None:
    with pytest.raises(ValueError, match="instagram-square"):
        resolve_target("instagram-reel")


@pytest.mark.parametrize("size", [(0, 100), (100, 8193), (-1, 5), (10.5, 10), (True, 10)])
def test_sides_outside_one_to_8192_whole_pixels_are_rejected(size: tuple[int, int]) -> None:
    with pytest.raises(ValueError, match="1 to 8192"):
        resolve_target(size)


def test_presets_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        PRESETS["hero"] = (1, 1)  # type: ignore[index]
