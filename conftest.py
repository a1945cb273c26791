"""Run the examples of the Markdown pages (README.md, docs/**/*.md) as doctests.

Examples are written in ```` ```pycon ```` fences: ``>>> `` / ``... `` lines
followed by the exact printed output, compared with the ``doctest_optionflags``
of ``pyproject.toml`` (NUMBER, ELLIPSIS, NORMALIZE_WHITESPACE). pytest's own
``--doctest-glob`` would read a closing fence as part of the expected output,
so the fence lines are blanked (line numbers kept) before parsing.
"""

import doctest
import re
from pathlib import Path

from _pytest.doctest import (
    DoctestItem,
    DoctestTextfile,
    _get_checker,
    _get_continue_on_failure,
    _get_runner,
    get_optionflags,
)

# The test run's XLA flags (tests/conftest.py) are set before jax starts, so an
# example prints the same numbers when its page runs alone as in the whole suite.
import tests.conftest  # noqa: F401

ROOT = Path(__file__).resolve().parent
_FENCE = re.compile(r"^\s*(```|~~~|:::)")


def strip_fences(text: str) -> str:
    """Blank every Markdown fence line, so a fence ends an example's output."""
    return "\n".join("" if _FENCE.match(line) else line for line in text.split("\n"))


def markdown_doctest(text: str, name: str, filename: str) -> doctest.DocTest:
    """The doctest of a Markdown page (all its examples, sharing one namespace)."""
    parser = doctest.DocTestParser()
    return parser.get_doctest(
        strip_fences(text), {"__name__": "__main__"}, name, filename, 0
    )


class MarkdownDoctest(DoctestTextfile):
    """A Markdown page whose ``>>>`` examples are one doctest."""

    def collect(self):
        encoding = self.config.getini("doctest_encoding")
        test = markdown_doctest(
            self.path.read_text(encoding), self.path.name, str(self.path)
        )
        runner = _get_runner(
            verbose=False,
            optionflags=get_optionflags(self.config),
            checker=_get_checker(),
            continue_on_failure=_get_continue_on_failure(self.config),
        )
        if test.examples:
            yield DoctestItem.from_parent(
                self, name=test.name, runner=runner, dtest=test
            )


def pytest_collect_file(file_path, parent):
    if file_path.suffix != ".md":
        return None
    rel = (
        file_path.resolve().relative_to(ROOT)
        if ROOT in file_path.resolve().parents
        else None
    )
    if rel is not None and (rel.parts[0] == "docs" or rel == Path("README.md")):
        return MarkdownDoctest.from_parent(parent, path=file_path)
    return None
