"""genvi.train and its checkpoint folder: identity, lock, resume rules, warnings."""

import json
import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import genvi
from genvi._src import runs


def _step(state):
    """Gradient descent with noise on |x|^2 / 2; the rate is a state leaf."""
    key, sub = jax.random.split(state["key"])
    x = state["x"]
    x = x - state["hyperparams"]["lr"] * x + 0.01 * jax.random.normal(sub, x.shape)
    return dict(state, x=x, key=key), {"loss": 0.5 * jnp.sum(x**2)}


def _state(lr=0.1, size=4, seed=0):
    return {
        "x": jnp.ones(size),
        "key": jax.random.key(seed),
        "hyperparams": {"lr": jnp.asarray(lr)},
    }


def _train(state, folder, num_steps, **kwargs):
    kwargs = {"steps_per_call": 5, "progress": False, **kwargs}
    return genvi.train(
        _step, state, num_steps=num_steps, checkpoint_dir=folder, **kwargs
    )


def test_reused_folder_raises_unless_resume_or_overwrite(tmp_path):
    _train(_state(), tmp_path, 10, checkpoint_every=5)
    with pytest.raises(
        ValueError,
        match=r"train: checkpoint folder .* already holds a run \(up to "
        r"ckpt_00000010\); pass resume=True to continue it, overwrite=True",
    ):
        _train(_state(seed=1), tmp_path, 5)
    # overwrite=True deletes the earlier run: nothing of it can be resumed.
    _train(_state(seed=1), tmp_path, 5, overwrite=True)
    assert [p.name for p in genvi.list_checkpoints(tmp_path)] == ["ckpt_00000005"]
    resumed, history = _train(_state(), tmp_path, 5, resume=True)
    alone, _ = genvi.train(_step, _state(seed=1), num_steps=5, progress=False)
    np.testing.assert_array_equal(resumed["x"], alone["x"])
    assert history["step"].tolist() == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError, match=r"train: `resume=True` continues the run"):
        _train(_state(), tmp_path, 5, resume=True, overwrite=True)


def test_resume_into_another_runs_folder_names_the_difference(tmp_path):
    _train(_state(size=4), tmp_path, 5)
    record = json.loads((tmp_path / runs.RUN_NAME).read_text())
    assert len(record["config_hash"]) == 16
    with pytest.raises(
        ValueError,
        match=r"train: checkpoint folder .* was written by another run \(config hash "
        r"[0-9a-f]{16}, this run [0-9a-f]{16}\): state leaf \"\['x'\]: "
        r"float32\[4\]\" \(folder\) vs \"\['x'\]: float32\[3\]\" \(this run\)",
    ):
        _train(_state(size=3), tmp_path, 10, resume=True)


def test_a_smaller_keep_frees_space_before_the_first_save(tmp_path):
    _train(_state(), tmp_path, 20, checkpoint_every=5, keep_checkpoints=None)
    assert len(genvi.list_checkpoints(tmp_path)) == 4
    # Nothing left to train, so nothing is saved: the pruning happens on opening
    # the folder (after a disk-full error, a smaller keep frees space at once).
    _train(_state(), tmp_path, 20, resume=True, keep_checkpoints=1)
    assert [p.name for p in genvi.list_checkpoints(tmp_path)] == ["ckpt_00000020"]


def test_resume_below_the_saved_step_raises(tmp_path):
    _train(_state(), tmp_path, 10)
    with pytest.raises(
        ValueError, match=r"train: `num_steps`=4 is below the step 10 of the check"
    ):
        _train(_state(), tmp_path, 4, resume=True)


def test_a_live_lock_refuses_and_a_stale_lock_is_taken_over(tmp_path):
    lock = tmp_path / runs.LOCK_NAME
    import socket

    lock.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(
        RuntimeError,
        match=rf"train: checkpoint folder .* is in use by process {os.getpid()} ",
    ):
        _train(_state(), tmp_path, 5)
    # A process id that no longer runs: the lock is stale.
    lock.write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with pytest.warns(RuntimeWarning, match=r"train: removing the stale lock .* of pr"):
        _train(_state(), tmp_path, 5)
    assert not lock.exists()  # released when the run returns


def test_resume_hyperparameters_checkpoint_wins_with_a_warning(tmp_path):
    _train(_state(lr=0.1), tmp_path, 10)
    full, _ = genvi.train(_step, _state(lr=0.1), num_steps=20, progress=False)
    with pytest.warns(
        genvi.CheckpointWarning,
        match=r"keeps the checkpoint's hyperparameters, which differ from those of "
        r"`state`: \['hyperparams'\]\['lr'\]: 0.1 \(checkpoint\) vs 0.5 \(`state`\)",
    ):
        resumed, _ = _train(_state(lr=0.5), tmp_path, 20, resume=True)
    np.testing.assert_array_equal(resumed["x"], full["x"])
    assert float(resumed["hyperparams"]["lr"]) == np.float32(0.1)
    # resume_hyperparams="state": the new rate from the restored point on.
    other = tmp_path / "other"
    half, _ = _train(_state(lr=0.1), other, 10)
    expected, _ = genvi.train(
        _step,
        dict(half, hyperparams={"lr": jnp.asarray(0.5)}),
        num_steps=10,
        progress=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        taken, _ = _train(
            _state(lr=0.5), other, 20, resume=True, resume_hyperparams="state"
        )
    np.testing.assert_array_equal(taken["x"], expected["x"])
    with pytest.raises(ValueError, match=r"train: `resume_hyperparams` must be one"):
        _train(_state(), other, 20, resume=True, resume_hyperparams="new")


def test_checkpoint_size_does_not_grow_with_the_run(tmp_path):
    def size(path, manifests=False):
        files = [p for p in path.rglob("*") if p.is_file()]
        files = [p for p in files if (p.name == "manifest.ocdbt") == manifests]
        return sum(p.stat().st_size for p in files)

    # A state that keeps its values but for one scalar (orbax compresses arrays,
    # so equal bytes need equal values) while the history grows by one row per
    # step. The metric "noise" is incompressible (a hash of the step), so a history kept
    # in the checkpoint would grow it by about 4 bytes a step.
    def step(state):
        t = state["t"] + 1.0
        noise = jnp.modf(jnp.sin(t * 12.9898) * 43758.5453)[0]
        return dict(state, t=t), {"loss": jnp.sum(state["x"]), "noise": noise}

    state = {"x": jnp.arange(64.0), "t": jnp.asarray(0.0)}
    genvi.train(
        step,
        state,
        num_steps=800,
        steps_per_call=100,
        checkpoint_every=400,
        keep_checkpoints=None,
        checkpoint_dir=tmp_path,
        progress=False,
    )
    steps = genvi.list_checkpoints(tmp_path)
    assert [p.name for p in steps] == ["ckpt_00000400", "ckpt_00000800"]
    # OCDBT splits its data into randomly named files of varying sizes (measured:
    # a few hundred bytes either way between two saves of one state), while a
    # history kept in the checkpoint would add 400 rows of three 4-8 byte numbers.
    assert abs(size(steps[0]) - size(steps[-1])) < 1000
    assert abs(size(steps[0], True) - size(steps[-1], True)) < 16
    # The history lives in the log and is restored from it.
    _, _, history = genvi.restore_checkpoint(steps[0], state)
    assert history["step"].tolist() == list(range(1, 401))


def test_leftover_temporaries_are_removed(tmp_path):
    _train(_state(), tmp_path, 5)
    (tmp_path / ".tmp_run.json.999").write_text("{")
    orbax_tmp = tmp_path / "ckpt_00000010.orbax-checkpoint-tmp-1"
    (orbax_tmp / "state").mkdir(parents=True)
    _train(_state(), tmp_path, 10, resume=True)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == ["ckpt_00000005", "ckpt_00000010", "metrics.log", "run.json"]


def test_nan_skip_warns_with_the_count():
    def step(x):
        new = jnp.where(x > 4.5, jnp.nan, x + 1.0)  # steps from the sixth on fail
        return new, {"x": new}

    with pytest.warns(
        genvi.NonFiniteWarning, match=r"train: nan_policy='skip' skipped 5 of 10 st"
    ):
        x, history = genvi.train(
            step, jnp.zeros(()), num_steps=10, nan_policy="skip", progress=False
        )
    assert float(x) == 5.0 and int(history["skipped"].sum()) == 5


def test_num_steps_zero_raises():
    with pytest.raises(ValueError, match=r"train: `num_steps` must be an int >= 1"):
        genvi.train(_step, _state(), num_steps=0)


def test_progress_lines_in_a_file_and_silence(capsys):
    genvi.train(_step, _state(), num_steps=10, steps_per_call=5)
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("train: 10/10 steps (100%) ")
    assert "loss=" in err
    genvi.train(_step, _state(), num_steps=10, steps_per_call=5, progress=False)
    assert capsys.readouterr().err == ""
