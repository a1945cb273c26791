"""The Markdown pages' examples are doctests whose printed output is compared.

``conftest.py`` collects README.md and docs/**/*.md; these tests check that
machinery: a page whose printed number drifts fails, tolerances follow the
digits written (NUMBER), and no page hides an unchecked ```python block.
"""

import doctest
from pathlib import Path

import pytest
from _pytest.doctest import _get_checker

from conftest import markdown_doctest, strip_fences

ROOT = Path(__file__).resolve().parents[1]
FLAGS = (
    doctest.ELLIPSIS
    | doctest.NORMALIZE_WHITESPACE
    | doctest.register_optionflag("NUMBER")
)

PAGE = """# A page

```pycon
>>> import math
>>> round(math.pi, 4)
{printed}
```
"""


def run_page(text: str) -> doctest.TestResults:
    test = markdown_doctest(text, "page.md", "page.md")
    runner = doctest.DocTestRunner(checker=_get_checker(), optionflags=FLAGS)
    return runner.run(test, out=lambda s: None)


def test_page_with_the_printed_output_passes():
    assert run_page(PAGE.format(printed="3.1416")) == (0, 2)


@pytest.mark.parametrize("printed", ["3.1417", "2.1416", "3.3"])
def test_page_whose_number_drifted_fails(printed):
    assert run_page(PAGE.format(printed=printed)).failed == 1


def test_number_compares_to_the_digits_written():
    # NUMBER: 3.14 on the page accepts 3.1416 printed, to the 2 decimals shown.
    assert run_page(PAGE.format(printed="3.14")).failed == 0


def test_fence_lines_are_blanked_in_place():
    text = "a\n```pycon\n>>> 1\n1\n```\nb"
    assert strip_fences(text).split("\n") == ["a", "", ">>> 1", "1", "", "b"]


def _pages():
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pages_have_no_unchecked_python_blocks(page):
    # Runnable code goes in ```pycon fences, which run as doctests; a
    # ```python fence would be shown without being checked.
    assert "```python" not in page.read_text(), f"{page}: use ```pycon"
