"""Catalogue files: merged over the built-ins by id; every problem named precisely."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldepot.catalog.loader import load_catalog_file
from modeldepot.catalog.schemas import HubSource, UrlSource
from modeldepot.errors import CatalogError
from modeldepot.services import load_entries
from tests.support import SettingsFactory

GOOD = """
[[models]]
id = "tiny-video"
source = "hf://acme/tiny-video"
revision = "main"
allow_patterns = ["*.json", "*.safetensors"]
model_type = "text-to-video"
quality = "high"
speed = "medium"
min_vram_gb = 8
custom_note = "extra keys are kept"

[[models]]
id = "TI2V-5B"
source = "hf://acme/ti2v-mirror"
model_type = "text-image-to-video"

[[models]]
id = "single.file"
source = "https://example.com/models/vae.safetensors"
sha256 = "%s"
size = 1234
""" % ("ab" * 32)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.toml"
    path.write_text(text)
    return path


def test_file_adds_and_overrides_builtins(tmp_path: Path, make_settings: SettingsFactory) -> None:
    entries = load_entries(make_settings(catalog=write(tmp_path, GOOD)))
    assert {"T2V-A14B", "I2V-A14B", "TI2V-5B", "tiny-video", "single.file"} <= set(entries)
    assert entries["TI2V-5B"].parsed_source() == HubSource("acme/ti2v-mirror", "main")
    tiny = entries["tiny-video"]
    assert tiny.allow_patterns == ["*.json", "*.safetensors"]
    assert tiny.min_vram_gb == 8
    assert tiny.model_extra == {"custom_note": "extra keys are kept"}
    single = entries["single.file"].parsed_source()
    assert isinstance(single, UrlSource)
    assert (single.filename, single.size) == ("vae.safetensors", 1234)
    assert entries["single.file"].repo_id == "modeldepot-url/single.file"


def test_builtins_carry_fallback_attributes() -> None:
    from modeldepot.catalog.builtin import BUILTIN_CATALOG

    by_id = {e.id: e for e in BUILTIN_CATALOG}
    assert set(by_id) == {"T2V-A14B", "I2V-A14B", "TI2V-5B"}
    assert by_id["T2V-A14B"].parsed_source() == HubSource("Wan-AI/Wan2.2-T2V-A14B", "main")
    for entry in BUILTIN_CATALOG:
        assert entry.model_type
        assert entry.resolutions
        assert entry.min_vram_gb
        assert entry.parameters_b
        assert entry.quality
        assert entry.speed


BAD = [
    ("models = [", "is not valid TOML"),
    ("[other]\nx = 1", "unknown top-level keys"),
    ("title = 'x'", "unknown top-level keys"),
    ("", "needs a [[models]] array"),
    ('[[models]]\nid = "../evil"\nsource = "hf://a/b"', "models[0] (id '../evil')"),
    ('[[models]]\nid = "ok"\nsource = "file:///etc/passwd"', "must be hf://org/name"),
    ('[[models]]\nid = "ok"\nsource = "ftp://host/x.bin"', "must be hf://org/name"),
    ('[[models]]\nid = "ok"\nsource = "hf://../../etc"', "is not hf://org/name"),
    ('[[models]]\nid = "ok"\nsource = "hf://a/b"\nsha256 = "zz"', "sha256"),
    ('[[models]]\nid = "ok"\nsource = "https://h/x.bin"\nsha256 = "../../x"', "sha256"),
    ('[[models]]\nid = "ok"\nsource = "https://h/"', "does not end in a file name"),
    ('[[models]]\nid = "ok"\nsource = "hf://a/b"\nrevision = "../main"', "not a valid revision"),
    ('[[models]]\nid = "ok"\nsource = "hf://a/b"\nquality = "superb"', "quality"),
    ('[[models]]\nid = "ok"\nsource = "hf://a/b"\nresolutions = ["big"]', "WIDTHxHEIGHT"),
    (
        '[[models]]\nid = "a"\nsource = "hf://a/b"\n[[models]]\nid = "a"\nsource = "hf://a/c"',
        "repeats an id",
    ),
    ('[[models]]\nsource = "hf://a/b"', "models[0]: id: Field required"),
]


@pytest.mark.parametrize(("text", "problem"), BAD)
def test_bad_catalogue_names_file_entry_and_problem(
    text: str, problem: str, tmp_path: Path
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        load_catalog_file(path)
    assert str(path) in info.value.message
    assert problem in info.value.message


def test_missing_catalogue_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot be read"):
        load_catalog_file(tmp_path / "nope.toml")
