"""The packages under test are the installed wheel when CI says so.

``scripts/test.sh`` builds the wheel, installs it (not editable) into
``.venv`` and runs the suite from a copy of ``tests/``, ``benchmarks/`` and
``docs/`` that has no ``dynopt/`` or ``genvi/`` beside it, with
``DYNVI_TEST_INSTALLED=1``; then the imports must resolve to site-packages.
"""

import os
from pathlib import Path

import pytest

import dynopt
import genvi


@pytest.mark.skipif(
    os.environ.get("DYNVI_TEST_INSTALLED") != "1",
    reason="source-tree run (DYNVI_TEST_INSTALLED=1 is set by scripts/test.sh)",
)
@pytest.mark.parametrize("package", [dynopt, genvi], ids=lambda m: m.__name__)
def test_package_comes_from_the_installed_wheel(package):
    path = Path(package.__file__).resolve()
    assert "site-packages" in path.parts, path
    assert (path.parent / "py.typed").exists(), "py.typed missing from the wheel"
