"""Checkpoints on orbax: round trips, structure checks, fallback, the metrics log."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genvi
from genvi._src import runs


def _state():
    return {
        "w": jnp.arange(6.0).reshape(2, 3),
        "key": jax.random.key(7),
        "legacy_key": jax.random.PRNGKey(8),
        "count": jnp.asarray(3, jnp.int32),
        "pair": (jnp.ones(2, jnp.float16), jnp.zeros((), jnp.bool_)),
        "half": jnp.asarray([1.5, -2.25], jnp.bfloat16),
        "empty": jnp.zeros((0, 4)),
    }


def _corrupt(step_folder):
    for part in (step_folder / "state").rglob("*"):
        if part.is_file():
            part.write_bytes(b"\x00garbage\xff" * 3)


def test_round_trip_with_typed_keys(tmp_path):
    state = _state()
    history = {"loss": np.array([3.0, 2.0]), "step": np.array([1, 2])}
    path = genvi.save_checkpoint(tmp_path, state, 2, history)
    assert path.name == "ckpt_00000002" and path.is_dir()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["ckpt_00000002", "metrics.log"]  # no temporary left
    like = jax.tree_util.tree_map(jnp.zeros_like, state)
    like["key"] = jax.random.key(0)
    restored, step, hist = genvi.restore_checkpoint(tmp_path, like)
    assert step == 2
    np.testing.assert_array_equal(hist["loss"], history["loss"])
    np.testing.assert_array_equal(hist["step"], history["step"])
    # The restored key draws the same numbers as the saved one.
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (3,)), jax.random.normal(state["key"], (3,))
    )
    for name in ("w", "legacy_key", "count", "half", "empty"):
        np.testing.assert_array_equal(restored[name], state[name])
        assert restored[name].dtype == state[name].dtype
    assert restored["pair"][0].dtype == jnp.float16
    assert restored["pair"][1].dtype == jnp.bool_


def test_restore_with_the_sharding_of_the_target(tmp_path):
    mesh = jax.sharding.Mesh(np.array(jax.devices()[:8]), ("data",))
    sharded = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    x = jnp.arange(16.0)
    genvi.save_checkpoint(tmp_path, {"x": x}, 1)
    like = {"x": jax.device_put(jnp.zeros(16), sharded)}
    restored, _, _ = genvi.restore_checkpoint(tmp_path, like)
    assert restored["x"].sharding.is_equivalent_to(sharded, 1)
    np.testing.assert_array_equal(restored["x"], x)


def test_restore_names_the_first_mismatching_key(tmp_path):
    a, b = jnp.ones(3), jnp.zeros(3)
    genvi.save_checkpoint(tmp_path, {"encoder": a, "decoder": b}, 1)
    with pytest.raises(
        ValueError,
        match=r"restore_checkpoint: .*differs from `like` at leaf 0: saved "
        r"\['decoder'\], `like` has \['critic'\]",
    ):
        genvi.restore_checkpoint(tmp_path, {"generator": a, "critic": b})
    with pytest.raises(ValueError, match=r"fewer leaves \(2\) than `like` \(3\); "):
        genvi.restore_checkpoint(tmp_path, {"encoder": a, "decoder": b, "z": a})
    with pytest.raises(ValueError, match=r"more leaves \(2\) than `like` \(1\)"):
        genvi.restore_checkpoint(tmp_path, {"decoder": b})
    with pytest.raises(
        ValueError, match=r"leaf \['decoder'\] has shape \(3,\) and dtype float32, "
    ):
        genvi.restore_checkpoint(tmp_path, {"encoder": a, "decoder": jnp.ones(4)})


def test_restore_errors(tmp_path):
    state = _state()
    with pytest.raises(FileNotFoundError, match=r"restore_checkpoint: no ckpt_<step>"):
        genvi.restore_checkpoint(tmp_path, state)
    with pytest.raises(FileNotFoundError, match=r"restore_checkpoint: no such check"):
        genvi.restore_checkpoint(tmp_path / "nothing", state)
    path = genvi.save_checkpoint(tmp_path, state, 1)
    _corrupt(path)
    with pytest.raises(
        ValueError, match=r"restore_checkpoint: .*ckpt_00000001' is not a readable"
    ):
        genvi.restore_checkpoint(tmp_path, state)


def test_corrupt_newest_falls_back_with_a_warning(tmp_path):
    for step in (1, 2, 3):
        genvi.save_checkpoint(tmp_path, {"w": jnp.full(2, float(step))}, step)
    _corrupt(tmp_path / "ckpt_00000003")
    with pytest.warns(
        genvi.CheckpointWarning,
        match=r"skipped unreadable checkpoint\(s\) \[.*ckpt_00000003'\].*restored "
        r".*ckpt_00000002'",
    ):
        restored, step, _ = genvi.restore_checkpoint(tmp_path, {"w": jnp.zeros(2)})
    assert step == 2 and restored["w"].tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match=r"ckpt_00000003' is not a readable"):
        genvi.restore_checkpoint(tmp_path, {"w": jnp.zeros(2)}, fallback=False)


def test_save_errors_and_keep(tmp_path):
    with pytest.raises(ValueError, match=r"save_checkpoint: `step` must be an int >="):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1)}, -1)
    with pytest.raises(ValueError, match=r"save_checkpoint: `keep` must be None or"):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1)}, 1, keep=0)
    for step in range(5):
        genvi.save_checkpoint(tmp_path, {"a": jnp.ones(1) * step}, step, keep=2)
    assert [p.name for p in genvi.list_checkpoints(tmp_path)] == [
        "ckpt_00000003",
        "ckpt_00000004",
    ]
    assert genvi.latest_checkpoint(tmp_path).name == "ckpt_00000004"
    assert genvi.latest_checkpoint(tmp_path / "missing") is None


def test_metrics_log_ignores_a_torn_record_and_rewrites_later_steps(tmp_path):
    runs.write_rows(tmp_path, {"loss": np.array([1.0, 2.0], np.float32)}, [1, 2])
    runs.write_rows(tmp_path, {"loss": np.array([3.0, 4.0], np.float32)}, [3, 4])
    # A resumed run from step 3 logs step 4 again: the new row replaces the old.
    runs.write_rows(tmp_path, {"loss": np.array([40.0], np.float32)}, [4])
    log = tmp_path / runs.LOG_NAME
    whole = log.read_bytes()
    runs.write_rows(tmp_path, {"loss": np.array([5.0], np.float32)}, [5])
    with open(log, "r+b") as f:  # a crash in the middle of the last append
        f.truncate(len(whole) + (len(log.read_bytes()) - len(whole)) // 2)
    history = runs.read_history(tmp_path)
    assert history["loss"].tolist() == [1.0, 2.0, 3.0, 40.0]
    assert history["loss"].dtype == np.float32
    assert runs.read_history(tmp_path, upto=2)["loss"].tolist() == [1.0, 2.0]
