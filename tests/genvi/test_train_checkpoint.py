"""Checkpoint files: round trips, atomicity, clear errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genvi


def _state():
    return {
        "w": jnp.arange(6.0).reshape(2, 3),
        "key": jax.random.key(7),
        "legacy_key": jax.random.PRNGKey(8),
        "count": jnp.asarray(3, jnp.int32),
        "pair": (jnp.ones(2, jnp.float16), jnp.zeros((), jnp.bool_)),
    }


def test_round_trip_with_typed_keys(tmp_path):
    state = _state()
    history = {"loss": np.array([3.0, 2.0]), "step": np.array([1, 2])}
    path = genvi.save_checkpoint(tmp_path, state, 2, history)
    assert path.name == "ckpt_00000002.npz"
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left
    like = jax.tree_util.tree_map(jnp.zeros_like, state)
    like["key"] = jax.random.key(0)
    restored, step, hist = genvi.restore_checkpoint(tmp_path, like)
    assert step == 2
    np.testing.assert_array_equal(hist["loss"], history["loss"])
    np.testing.assert_array_equal(
        jax.random.key_data(restored["key"]), jax.random.key_data(state["key"])
    )
    # The restored key draws the same numbers as the saved one.
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (3,)), jax.random.normal(state["key"], (3,))
    )
    for name in ("w", "legacy_key", "count"):
        np.testing.assert_array_equal(restored[name], state[name])
        assert restored[name].dtype == state[name].dtype
    assert restored["pair"][0].dtype == jnp.float16


def test_restore_errors(tmp_path):
    state = _state()
    with pytest.raises(FileNotFoundError, match=r"restore_checkpoint: no ckpt_<step>"):
        genvi.restore_checkpoint(tmp_path, state)
    with pytest.raises(FileNotFoundError, match=r"restore_checkpoint: no such file"):
        genvi.restore_checkpoint(tmp_path / "nothing.npz", state)
    bad = tmp_path / "ckpt_00000001.npz"
    bad.write_bytes(b"PK\x03\x04 definitely not a zip archive")
    with pytest.raises(ValueError, match=r"restore_checkpoint: .*ckpt_00000001.npz"):
        genvi.restore_checkpoint(tmp_path, state)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.ones(2))
    with pytest.raises(ValueError, match=r"is not a genvi checkpoint"):
        genvi.restore_checkpoint(other, state)
    path = genvi.save_checkpoint(tmp_path / "ok", state, 5)
    with pytest.raises(ValueError, match=r"holds 6 leaves but `like` has 5"):
        genvi.restore_checkpoint(path, {k: v for k, v in state.items() if k != "w"})
    wrong = dict(state, w=jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"has shape \(2, 3\) and dtype float32"):
        genvi.restore_checkpoint(path, wrong)


def test_save_errors_and_keep(tmp_path):
    with pytest.raises(ValueError, match=r"save_checkpoint: `step` must be >= 0"):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1)}, -1)
    with pytest.raises(ValueError, match=r"save_checkpoint: `keep` must be None or"):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1)}, 1, keep=0)
    for step in range(5):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1) * step}, step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt_00000003.npz",
        "ckpt_00000004.npz",
    ]
    assert genvi.latest_checkpoint(tmp_path).name == "ckpt_00000004.npz"
    assert genvi.latest_checkpoint(tmp_path / "missing") is None
