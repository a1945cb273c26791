"""A run killed with SIGKILL at random moments resumes bit-exactly.

A child process trains with a checkpoint every 2 steps (so that most of its
time is spent saving, and most kills land inside a save) and is killed at a
random moment after its latest checkpoint; the next child resumes from the
folder. After a few kills a last run finishes, and its state and history must
equal those of one uninterrupted run, bit for bit.
"""

import os
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import genvi

ROOT = Path(__file__).resolve().parents[2]
NUM_STEPS = 200
KILLS = 3


def step(state):
    x, key = state
    key, sub = jax.random.split(key)
    x = 0.95 * x + 0.1 * jax.random.normal(sub, x.shape)
    return (x, key), {"loss": 0.5 * jnp.sum(x**2)}


def initial_state():
    return (jnp.ones(16), jax.random.key(0))


def run(folder, checkpoint_every=2):
    return genvi.train(
        step,
        initial_state(),
        num_steps=NUM_STEPS,
        steps_per_call=2,
        checkpoint_every=checkpoint_every,
        checkpoint_dir=folder,
        resume=True,
        progress=False,
    )


def test_sigkill_at_random_moments_resumes_bit_exactly(tmp_path):
    folder = tmp_path / "ckpt"
    rng = random.Random(0)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (
        "import warnings; warnings.simplefilter('ignore');"
        "from tests.genvi.test_checkpoint_crash import run; import sys;"
        "run(sys.argv[1])"
    )
    reached, torn = [], 0  # torn: kills that left half a save behind
    for _ in range(KILLS):
        before = genvi.latest_checkpoint(folder)
        child = subprocess.Popen(
            [sys.executable, "-c", code, str(folder)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        # Wait for a new checkpoint, then kill at a random moment after it.
        while genvi.latest_checkpoint(folder) == before and child.poll() is None:
            assert time.monotonic() < deadline, "the child wrote no checkpoint"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert child.returncode == -signal.SIGKILL, "the child ended before the kill"
        reached.append(genvi.latest_checkpoint(folder).name)
        torn += any("orbax-checkpoint-tmp" in p.name for p in folder.iterdir())
    assert len(set(reached)) == KILLS  # every child made progress
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the stale lock of the killed child
        resumed, history = run(folder, checkpoint_every=None)
    full, full_history = genvi.train(
        step, initial_state(), num_steps=NUM_STEPS, steps_per_call=2, progress=False
    )
    np.testing.assert_array_equal(resumed[0], full[0])
    np.testing.assert_array_equal(
        jax.random.key_data(resumed[1]), jax.random.key_data(full[1])
    )
    assert set(history) == set(full_history)
    for name in full_history:
        np.testing.assert_array_equal(history[name], full_history[name], name)
    assert not (folder / ".lock").exists()
    # Whatever a kill left half-written is gone once the run has resumed.
    assert not [p.name for p in folder.iterdir() if "tmp" in p.name], torn
