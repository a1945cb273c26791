"""Opening a checkpoint folder for a run: identity, resume rules, precedence."""

from __future__ import annotations

import os
import shutil
import warnings

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from . import runs
from .checkpoint import CheckpointWarning, list_checkpoints, restore_checkpoint


def open_run(
    folder,
    state,
    *,
    data,
    step_fn,
    nan_policy,
    resume,
    overwrite,
    num_steps,
    resume_hyperparams,
    mesh,
    keep=None,
):
    """Checks ``folder`` against the run and restores from it when resuming.

    The caller holds the folder's lock. Checkpoints beyond the newest ``keep``
    are deleted before training starts. Returns ``(state, start, history,
    description)``: the state to train from, the step it is at, the restored
    history (name -> list of arrays) and the run's description for ``run.json``.
    See :func:`genvi.train` for the rules.
    """
    runs.clean_temporaries(folder)
    description = runs.describe_run(state, data, step_fn, nan_policy)
    recorded = runs.read_run(folder)
    found = list_checkpoints(folder)
    start, history = 0, {}
    if overwrite:
        runs.delete_run(folder, list_checkpoints(folder))
    elif resume:
        if recorded is not None and recorded.get("config_hash") != runs.run_hash(
            description
        ):
            raise ValueError(
                f"train: checkpoint folder {folder!r} was written by another run "
                f"(config hash {recorded.get('config_hash')}, this run "
                f"{runs.run_hash(description)}): "
                f"{runs.first_difference(recorded.get('config', {}), description)}"
                "; use another folder, or overwrite=True to delete it"
            )
        if found:
            given = state
            if mesh is not None:
                state = jax.device_put(state, NamedSharding(mesh, P()))
            state, start, history = restore_checkpoint(folder, state)
            history = {k: [v] for k, v in history.items()}
            for path in list_checkpoints(folder):
                if int(path.name.split("_")[1]) > start:  # unreadable ones
                    shutil.rmtree(path, ignore_errors=True)
            if num_steps < start:
                raise ValueError(
                    f"train: `num_steps`={num_steps} is below the step {start} "
                    f"of the checkpoint in {folder!r}; pass num_steps >= "
                    f"{start} (the total, counting restored steps)"
                )
            _resume_hyperparameters_note(given, state, resume_hyperparams)
            if resume_hyperparams == "state":
                state = runs.take_hyperparameters(state, given)
    elif found or os.path.exists(os.path.join(folder, runs.LOG_NAME)):
        newest = found[-1].name if found else "a metrics log"
        raise ValueError(
            f"train: checkpoint folder {folder!r} already holds a run (up to "
            f"{newest}); pass resume=True to continue it, overwrite=True to "
            "delete it, or use another folder"
        )
    if keep is not None:
        # Free space before the first save (after a disk-full error, say).
        for path in list_checkpoints(folder)[:-keep]:
            shutil.rmtree(path, ignore_errors=True)
    return state, start, history, description


def _resume_hyperparameters_note(given, restored, choice):
    differ = runs.hyperparameter_differences(restored, given)
    if differ and choice == "checkpoint":
        warnings.warn(
            "train: the resumed run keeps the checkpoint's hyperparameters, which "
            f"differ from those of `state`: {'; '.join(differ[:5])}"
            f"{' ...' if len(differ) > 5 else ''}; pass "
            "resume_hyperparams='state' to use those of `state`",
            CheckpointWarning,
            stacklevel=4,
        )
