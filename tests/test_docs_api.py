"""Every public name (``__all__``) has a rendered entry in the built docs.

The site is built by ``bash scripts/docs.sh`` (and in CI by
``scripts/test.sh``, before pytest) into ``build/docs/html``, or the folder in
``DYNVI_DOCS_HTML``. This test reads its ``objects.inv``, the inventory of every
object Sphinx rendered, and compares it with the packages' ``__all__``.
"""

import importlib
import os
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("DYNVI_DOCS_HTML", ROOT / "build" / "docs" / "html"))


def read_inventory(path: Path) -> dict[str, str]:
    """``{object name: domain:role}`` from a Sphinx ``objects.inv`` (version 2)."""
    data = path.read_bytes()
    header = data.split(b"\n", 4)
    if header[0] != b"# Sphinx inventory version 2":
        raise ValueError(f"{path}: not a Sphinx inventory v2, got {header[0]!r}")
    entries = {}
    for line in zlib.decompress(header[4]).decode().splitlines():
        name, role, _ = line.split(" ", 2)
        entries[name] = role
    return entries


def missing_entries(inventory: dict[str, str], package: str) -> list[str]:
    """The names of ``package.__all__`` without a Python entry in the inventory."""
    module = importlib.import_module(package)
    return [
        name
        for name in module.__all__
        if not inventory.get(f"{package}.{name}", "").startswith("py:")
    ]


def _inventory() -> dict[str, str]:
    path = HTML / "objects.inv"
    if not path.exists():
        if os.environ.get("DYNVI_REQUIRE_DOCS") == "1":
            pytest.fail(f"no built docs at {path} (DYNVI_REQUIRE_DOCS=1)")
        pytest.skip(f"docs not built at {path}: run `bash scripts/docs.sh` first")
    return read_inventory(path)


@pytest.mark.parametrize("package", ["dynopt", "genvi"])
def test_every_public_name_is_rendered(package):
    assert missing_entries(_inventory(), package) == []


def test_check_detects_a_missing_name():
    # The check itself: an inventory without one public name reports it.
    inventory = {f"dynopt.{n}": "py:function" for n in ("sgd", "momentum")}
    missing = missing_entries(inventory, "dynopt")
    assert "nesterov" in missing and "sgd" not in missing
