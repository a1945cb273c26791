"""Progress lines when stderr is a file (as under pytest), and progress=False."""

import diffrax
import jax.numpy as jnp
import pytest

import dynopt
from dynopt._src.progress import progress_bar


def _quadratic(x):
    return 0.5 * jnp.sum(x**2)


def _solve():
    return {"solver": diffrax.Heun(), "x64": False, "rtol": 1e-3, "atol": 1e-3}


TOOLS = {
    "discrete_trajectory": lambda progress: dynopt.discrete_trajectory(
        dynopt.sgd(0.1), _quadratic, jnp.ones(2), 4, progress=progress
    ),
    "continuous_trajectory": lambda progress: dynopt.continuous_trajectory(
        dynopt.sgd(0.1),
        _quadratic,
        jnp.ones(2),
        jnp.array([0.0, 1.0]),
        progress=progress,
        **_solve(),
    ),
    "order_study": lambda progress: dynopt.order_study(
        dynopt.sgd,
        _quadratic,
        jnp.ones(2),
        [0.5, 0.25],
        1.0,
        progress=progress,
        **_solve(),
    ),
    "sharpness_along": lambda progress: dynopt.sharpness_along(
        _quadratic,
        dynopt.discrete_trajectory(
            dynopt.sgd(0.1), _quadratic, jnp.ones(2), 5, progress=False
        ),
        num_iters=2,
        points_per_call=4,
        progress=progress,
    ),
}
UNITS = {
    "discrete_trajectory": "4/4 steps",
    "continuous_trajectory": "1/1 solves",
    "order_study": "2/2 step sizes",
    "sharpness_along": "6/6 points",
}


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_progress_lines_in_a_file_and_silence(name, capsys):
    TOOLS[name](True)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith(f"{name}: 0/")  # the start of the task
    assert lines[-1].startswith(f"{name}: {UNITS[name]} (100%) ")
    TOOLS[name](False)
    assert capsys.readouterr().err == ""


def test_lines_are_throttled(capsys):
    bar = progress_bar(1000, True, "task", interval=3600.0)
    for _ in range(1000):
        bar.update(1)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    # The start and the end only: no line per update within the interval.
    assert [line.split(" (")[0] for line in lines] == [
        "task: 0/1000 steps",
        "task: 1000/1000 steps",
    ]
