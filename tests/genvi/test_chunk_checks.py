"""The finite checks of ``genvi.train``'s chunk against NumPy's ``isfinite``.

``_sums_finite`` is the cheap check (elementwise sums of same-shape leaves, in
groups, then one reduction): ``True`` must prove every element finite, and a
NaN or an infinity anywhere must give ``False``; a sum that overflows may give
``False`` too, which the exact ``_all_finite`` then settles.
"""

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genvi._src.chunk import REDUCE_OPERANDS, _all_finite, _sums_finite

# more leaves of one shape than one group holds, plus leaves of other shapes
# and dtypes, and an integer leaf the checks must ignore
N_SAME = 2 * REDUCE_OPERANDS + 5


def _tree(rng):
    tree = {
        "same": [rng.normal(size=(3, 2)).astype(np.float32) for _ in range(N_SAME)],
        "vec": [rng.normal(size=(5,)).astype(np.float32) for _ in range(3)],
        "half": rng.normal(size=(4,)).astype(np.float16),
        "scalar": np.float32(rng.normal()),
        "count": np.int32(7),
    }
    return tree


def _places(tree):
    return (
        [("same", i) for i in range(N_SAME)]
        + [("vec", i) for i in range(3)]
        + [
            ("half", None),
            ("scalar", None),
        ]
    )


def _put(tree, place, flat_index, value):
    key, i = place
    leaf = tree[key] if i is None else tree[key][i]
    leaf = np.array(leaf)
    leaf.reshape(-1)[flat_index % leaf.size] = value
    if i is None:
        tree[key] = leaf
    else:
        tree[key][i] = leaf


def test_finite_tree_passes():
    tree = _tree(np.random.default_rng(0))
    assert bool(_sums_finite(tree)) and bool(_all_finite(tree))


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    bad=st.lists(
        st.tuples(
            st.integers(0, N_SAME + 4),
            st.integers(0, 63),
            st.sampled_from([np.nan, np.inf, -np.inf]),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_any_nan_or_inf_fails(seed, bad):
    rng = np.random.default_rng(seed)
    tree = _tree(rng)
    places = _places(tree)
    for p, k, value in bad:
        _put(tree, places[p], k, value)
    assert not bool(_sums_finite(tree))
    assert not bool(_all_finite(tree))


def test_opposite_infinities_in_two_leaves_fail():
    # inf + (-inf) is NaN, not a cancellation to a finite number
    tree = _tree(np.random.default_rng(1))
    _put(tree, ("same", 0), 0, np.inf)
    _put(tree, ("same", 1), 0, -np.inf)
    assert not bool(_sums_finite(tree))


def test_overflowing_sum_is_settled_by_the_exact_check():
    big = np.float32(3e38)
    tree = {"a": np.full((2,), big, np.float32), "b": np.full((2,), big, np.float32)}
    assert np.isfinite(tree["a"]).all() and np.isfinite(tree["b"]).all()
    assert not bool(_sums_finite(tree))  # the sum overflowed: a false alarm
    assert bool(_all_finite(tree))  # which the exact check clears


@pytest.mark.parametrize("tree", [{}, {"count": jnp.int32(3)}])
def test_no_floating_leaf_is_finite(tree):
    assert bool(_sums_finite(tree))
