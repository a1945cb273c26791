r"""A generic jit-compiled training loop over any state pytree.

The loop knows nothing about models or losses. A training run is a pure step

.. math::
    s_{k+1}, m_k = \mathrm{step}(s_k) \quad (\text{or } \mathrm{step}(s_k, D)),

where the state ``s`` is any pytree (parameters, optimiser states, a PRNG key, a
step counter, several players of a game...), ``m_k`` a dict of scalar metrics and
``D`` an optional dataset kept on device. :func:`train` compiles
``steps_per_call`` steps into one ``jax.lax.scan``, calls it until ``num_steps``
steps are done, stacks the metrics into a history, handles non-finite steps,
writes checkpoints and, given a mesh, runs data-parallel.

For the common case of one ``flax.nnx`` model (or a tuple of models) trained
with one optax/dynopt optimiser on one loss, :func:`init_train_state` and
:func:`gradient_step` build the state and the step::

    graphdef, state = genvi.init_train_state((encoder, decoder), optax.adam(1e-3),
                                             jax.random.key(0))
    def loss_fn(models, key, data):
        encoder, decoder = models
        x = genvi.sample_batch(key, data, 128)
        return genvi.vae_loss(key, x, encoder, decoder, likelihood="bernoulli")
    step = genvi.gradient_step(loss_fn, optax.adam(1e-3), graphdef)
    state, history = genvi.train(step, state, data=x_train, num_steps=2000)
    encoder, decoder = genvi.merge_model(graphdef, state)

A game with several players (GAN, AAE, ALI) writes its own step, e.g. a state
``(params_d, params_g, opt_d, opt_g, key)`` and a step that updates both players;
the loop treats it the same way.
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from dynopt._src.progress import progress_bar

from . import runs
from .checkpoint import (
    CheckpointWriter,
)
from .chunk import _check_step, _compiled_chunk
from .core import LossOut
from .parallel import warn_if_not_parallel
from .resume import open_run

_NAN_POLICIES = ("skip", "stop", "raise")
_HYPERPARAMS = ("checkpoint", "state")


class NonFiniteWarning(RuntimeWarning):
    """Training stopped at a step whose metrics or new state were not finite."""


class TrainState(NamedTuple):
    """The state of :func:`gradient_step`: model(s) and one optimiser.

    The model's graph definition (its Python structure) is static and kept out of
    the state; ``nnx.merge(graphdef, state.params, state.rest)`` (or
    :func:`merge_model`) rebuilds the model.

    Attributes:
      params: the ``nnx.Param`` variables of the model, an ``nnx.State``.
      opt_state: the optimiser state for ``params``.
      key: the PRNG key, split once per step (so a resumed run draws the same
        numbers as an uninterrupted one).
      step: int32 count of the steps taken.
      rest: the model's other variables (batch statistics, RNG counts...).
    """

    params: Any
    opt_state: Any
    key: jax.Array
    step: jax.Array
    rest: Any


def init_train_state(model, optimizer: optax.GradientTransformation, key):
    """Splits an ``nnx`` model into a static graph and a :class:`TrainState`.

    Args:
      model: an ``nnx.Module`` or a tuple/list/dict of modules.
      optimizer: any optax (or dynopt) gradient transformation.
      key: a PRNG key (``jax.random.key`` or ``jax.random.PRNGKey``) or an int
        seed.

    Returns:
      ``(graphdef, state)``; pass ``graphdef`` to :func:`gradient_step` and
      :func:`merge_model`.

    Raises:
      TypeError: if ``optimizer`` has no ``init``/``update``.
    """
    if not (hasattr(optimizer, "init") and hasattr(optimizer, "update")):
        raise TypeError(
            "init_train_state: `optimizer` must be an optax GradientTransformation, "
            f"got {type(optimizer).__name__}"
        )
    if isinstance(key, int):
        key = jax.random.key(key)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    state = TrainState(
        params=params,
        opt_state=optimizer.init(params),
        key=key,
        step=jnp.asarray(0, jnp.int32),
        rest=rest,
    )
    return graphdef, state


def merge_model(graphdef, state: TrainState):
    """The ``nnx`` model(s) of a :class:`TrainState` (a new object, not shared)."""
    return nnx.merge(graphdef, state.params, state.rest)


def gradient_step(
    loss_fn: Callable, optimizer: optax.GradientTransformation, graphdef
) -> Callable:
    r"""One optimiser step on ``loss_fn`` for a :class:`TrainState`.

    .. math::
        g = \nabla_\theta L(\theta_k; \xi_k), \quad
        (u, o_{k+1}) = \mathrm{opt.update}(g, o_k, \theta_k), \quad
        \theta_{k+1} = \theta_k + u,

    with a fresh key ``xi_k`` split from ``state.key`` each step.

    Args:
      loss_fn: ``loss_fn(model, key, data) -> LossOut | scalar``; ``model`` is
        the merged ``nnx`` model (or tuple of models), ``data`` whatever was
        passed to :func:`train` as ``data`` (``None`` without data). With a
        :class:`LossOut`, ``aux`` entries join the metrics.
      optimizer: the transformation used by :func:`init_train_state`.
      graphdef: the graph definition returned by :func:`init_train_state`.

    Returns:
      ``step_fn(state, data=None) -> (state, metrics)`` with metrics ``loss``,
      ``grad_norm`` and the ``aux`` terms.
    """

    def step_fn(state: TrainState, data=None):
        key, sub = jax.random.split(state.key)

        def objective(params):
            model = nnx.merge(graphdef, params, state.rest)
            out = loss_fn(model, sub, data)
            # The loss may update non-Param variables (e.g. batch statistics).
            _, _, rest = nnx.split(model, nnx.Param, ...)
            if isinstance(out, LossOut):
                return out.loss, (dict(out.aux), rest)
            return out, ({}, rest)

        (loss, (aux, rest)), grads = jax.value_and_grad(objective, has_aux=True)(
            state.params
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, "grad_norm": optax.tree.norm(grads), **aux}
        new = TrainState(params, opt_state, key, state.step + 1, rest)
        return new, metrics

    return step_fn


def sample_batch(key, data, batch_size: int, *, data_axis: str = "data"):
    r"""A minibatch of ``batch_size`` rows drawn uniformly with replacement.

    Indices ``i_1..i_B ~ U{0..N-1}`` i.i.d. (the minibatch model of SGD
    theory), gathered from every leaf of ``data`` along its first axis. Inside
    :func:`train` with a mesh, the batch is then sharded over the mesh axis
    ``data_axis`` so that each device computes on ``batch_size / n`` rows and
    gradients are all-reduced by the compiler (data parallelism).

    Args:
      key: a PRNG key.
      data: an array or a pytree of arrays sharing their first dimension N.
      batch_size: rows per batch, a Python int >= 1.
      data_axis: the mesh axis to shard the batch over (default ``"data"``).

    Returns:
      The batch, with the structure of ``data``.

    >>> x, y = jnp.arange(10.0), jnp.arange(10)
    >>> xb, yb = sample_batch(jax.random.key(0), (x, y), 4)
    >>> xb.shape, bool(jnp.all(xb == yb))
    ((4,), True)

    Raises:
      ValueError: if ``batch_size`` < 1, leaves differ in their first
        dimension, or the batch does not divide over the mesh axis.
    """
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(
            f"sample_batch: `batch_size` must be an int >= 1, got {batch_size!r}"
        )
    leaves = jax.tree_util.tree_leaves(data)
    if not leaves:
        raise ValueError("sample_batch: `data` holds no arrays")
    sizes = {int(jnp.shape(x)[0]) if jnp.ndim(x) else 0 for x in leaves}
    if len(sizes) != 1 or 0 in sizes:
        raise ValueError(
            "sample_batch: every leaf of `data` needs the same first dimension, got "
            f"shapes {[tuple(jnp.shape(x)) for x in leaves]}"
        )
    (n,) = sizes
    idx = jax.random.randint(key, (batch_size,), 0, n)
    batch = jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), data)
    return jax.tree_util.tree_map(lambda x: shard_batch(x, data_axis=data_axis), batch)


def shard_batch(x, *, data_axis: str = "data"):
    """Shards ``x`` over the mesh axis ``data_axis`` of the active mesh, if any.

    Outside a mesh (``jax.set_mesh``, which :func:`train` enters when given a
    mesh) or when the mesh has no such axis, ``x`` is returned unchanged.

    Raises:
      ValueError: if the first dimension of ``x`` does not divide over the axis.
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty or data_axis not in mesh.axis_names:
        return x
    n = mesh.shape[data_axis]
    if jnp.shape(x)[0] % n:
        raise ValueError(
            f"shard_batch: the batch dimension {jnp.shape(x)[0]} must divide over "
            f"the {n} devices of mesh axis {data_axis!r}"
        )
    spec = P(data_axis)
    axis_type = dict(zip(mesh.axis_names, mesh.axis_types))[data_axis]
    if axis_type == jax.sharding.AxisType.Explicit:
        return jax.sharding.reshard(x, spec)
    return jax.lax.with_sharding_constraint(x, spec)


def train(
    step_fn: Callable,
    state,
    *,
    num_steps: int,
    data=None,
    steps_per_call: int | None = None,
    unroll: bool | None = None,
    nan_policy: str = "stop",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
    keep_checkpoints: int | None = 3,
    overwrite: bool = False,
    resume_hyperparams: str = "checkpoint",
    progress: bool = True,
    mesh: jax.sharding.Mesh | None = None,
    data_axis: str = "data",
):
    """Runs ``step_fn`` for ``num_steps`` steps, ``steps_per_call`` per jitted call.

    Each call runs up to ``steps_per_call`` steps in one compiled loop that
    updates the state in place, as a plain ``jax.lax.scan`` would; a call that
    needs fewer (the last one, or one ending at a checkpoint) runs the same
    program with a smaller step count, so the whole run compiles once and
    every step executes the same program (which makes resumed runs
    bit-exact). Progress is a tqdm bar on a terminal and a line about every
    ten seconds when stderr is a file or a pipe; ``progress=False`` silences
    both.

    Non-finite steps (a NaN or inf in the metrics or in a floating leaf of the
    new state) are handled by ``nan_policy``:

    - ``"skip"``: the step's floating leaves are discarded (its integer leaves,
      e.g. the PRNG key and counters, advance so the next step differs; so do
      integer step counts inside optimiser states), the step is recorded in
      the history with ``skipped=True`` and its non-finite metrics; at the
      end a :class:`NonFiniteWarning` says how many steps were skipped.
    - ``"stop"``: training stops with the state after the last finite step;
      the history ends with that step, ``history["stopped_at"]`` holds the
      number of the failed step and a :class:`NonFiniteWarning` is issued.
    - ``"raise"``: as ``"stop"``, then raises ``FloatingPointError``.

    Checkpoints (see ``docs/checkpoints.md``) are written with orbax-checkpoint
    into ``checkpoint_dir``, in the background while training goes on; every
    save is committed before :func:`train` returns. The folder also holds the
    run's identity (a hash of the key paths, shapes and dtypes of the state and
    data, the step function's name and the NaN policy), an append-only metrics
    log (a checkpoint holds no history, so its size does not grow with the
    run) and, while a run writes it, a lock with the writer's process id: a
    second run on the same folder fails instead of mixing checkpoints.

    Args:
      step_fn: pure ``step_fn(state) -> (state, metrics)``, or
        ``step_fn(state, data) -> (state, metrics)`` when ``data`` is given;
        the new state must have the structure, shapes and dtypes of the old;
        metrics is a dict of arrays (usually scalars).
      state: any pytree of arrays.
      num_steps: total number of steps of the run (>= 1), counting steps
        restored from a checkpoint.
      data: optional pytree of arrays passed to every step as a jit argument
        (not baked into the program), e.g. the training set for
        :func:`sample_batch`. Not saved in checkpoints.
      steps_per_call: steps per compiled call (default ``None``: 100 in a
        loop, 1 unrolled).
      unroll: write the steps of a call out one after another instead of as
        the body of a loop (compile time then grows with ``steps_per_call``).
        Default ``None``: unrolled when the step contains a convolution and
        runs on the CPU, where XLA compiles convolutions inside a loop body to
        a much slower path (see docs/benchmarks/train_speed.md); a loop
        otherwise.
      nan_policy: ``"skip"``, ``"stop"`` (default) or ``"raise"``.
      checkpoint_dir: folder for checkpoints (default ``None``: none written).
      checkpoint_every: save every this many steps (default ``None``: only at
        the end); needs ``checkpoint_dir``. With a ``checkpoint_dir`` the final
        state is saved too, unless training stopped at a non-finite step.
      resume: continue from the newest readable checkpoint in
        ``checkpoint_dir`` if there is one (``state`` then only gives the
        structure); the folder must have been written by a run of the same
        configuration. Default ``False``: the folder must hold no checkpoint.
      keep_checkpoints: newest checkpoints kept (default 3; ``None``: all).
      overwrite: with ``resume=False``, delete the checkpoints, log and
        identity of an earlier run in ``checkpoint_dir`` instead of raising
        (default ``False``).
      resume_hyperparams: which hyperparameters a resumed run uses: the
        ``"checkpoint"``'s (default; the run continues bit-exactly, with a
        :class:`~genvi.CheckpointWarning` listing every hyperparameter that
        differs from ``state``), or those of ``state`` (``"state"``).
        Hyperparameters are the leaves under a field or key named
        ``hyperparams`` (dynopt and ``optax.inject_hyperparams`` states) or
        ``hyper`` (:class:`~genvi.AdversarialState`).
      progress: show progress (default True).
      mesh: a ``jax.sharding.Mesh`` for data parallelism (default ``None``):
        ``state`` and ``data`` are replicated over it, and batches drawn with
        :func:`sample_batch` are sharded over ``data_axis``.
      data_axis: the mesh axis of the batch (default ``"data"``).

    Returns:
      ``(state, history)``: the final state and a dict of numpy arrays with one
      entry per recorded step: each metric, ``step`` (the step number, from 1)
      and ``skipped``; plus ``stopped_at`` (0-d) if training stopped early.

    Example (gradient descent on ``x^2 / 2``; the state is a plain array):

    >>> def step(x):
    ...     return 0.9 * x, {"loss": 0.5 * x**2}
    >>> x, history = train(step, jnp.asarray(1.0), num_steps=3, progress=False)
    >>> round(float(x), 3), history["step"].tolist()
    (0.729, [1, 2, 3])

    Raises:
      ValueError: for a bad ``num_steps``, ``steps_per_call``, ``unroll``,
        ``nan_policy``,
        ``checkpoint_every``, ``resume_hyperparams``, a mesh without
        ``data_axis``, ``resume`` without ``checkpoint_dir``, a folder holding
        another run's checkpoints (or any checkpoint, without ``resume`` or
        ``overwrite``), or a checkpoint beyond ``num_steps``.
      RuntimeError: if another live process writes ``checkpoint_dir``.
      TypeError: if ``step_fn`` does not map a state to a state of the same
        structure and a dict of array metrics.
      FloatingPointError: with ``nan_policy="raise"`` at a non-finite step.
    """
    if (
        not isinstance(num_steps, int | np.integer)
        or isinstance(num_steps, bool)
        or num_steps < 1
    ):
        raise ValueError(f"train: `num_steps` must be an int >= 1, got {num_steps!r}")
    if steps_per_call is not None and (
        not isinstance(steps_per_call, int | np.integer) or steps_per_call < 1
    ):
        raise ValueError(
            f"train: `steps_per_call` must be an int >= 1, got {steps_per_call!r}"
        )
    if unroll is not None and not isinstance(unroll, bool):
        raise ValueError(f"train: `unroll` must be None or a bool, got {unroll!r}")
    if nan_policy not in _NAN_POLICIES:
        raise ValueError(
            f"train: `nan_policy` must be one of {_NAN_POLICIES}, got {nan_policy!r}"
        )
    if resume_hyperparams not in _HYPERPARAMS:
        raise ValueError(
            f"train: `resume_hyperparams` must be one of {_HYPERPARAMS}, got "
            f"{resume_hyperparams!r}"
        )
    if checkpoint_every is not None:
        if not isinstance(checkpoint_every, int | np.integer) or checkpoint_every < 1:
            raise ValueError(
                "train: `checkpoint_every` must be None or an int >= 1, got "
                f"{checkpoint_every!r}"
            )
        if checkpoint_dir is None:
            raise ValueError("train: `checkpoint_every` needs a `checkpoint_dir`")
    if resume and checkpoint_dir is None:
        raise ValueError("train: `resume=True` needs a `checkpoint_dir`")
    if resume and overwrite:
        raise ValueError(
            "train: `resume=True` continues the run in `checkpoint_dir` and "
            "`overwrite=True` deletes it; pass one of them"
        )
    if keep_checkpoints is not None and (
        not isinstance(keep_checkpoints, int | np.integer) or keep_checkpoints < 1
    ):
        raise ValueError(
            "train: `keep_checkpoints` must be None or an int >= 1, got "
            f"{keep_checkpoints!r}"
        )
    if mesh is not None and data_axis not in mesh.axis_names:
        raise ValueError(
            f"train: `mesh` has no axis {data_axis!r} (`data_axis`); its axes are "
            f"{mesh.axis_names}"
        )
    state = jax.tree_util.tree_map(jnp.asarray, state)
    run = functools.partial(
        _run,
        step_fn,
        num_steps=num_steps,
        data=data,
        steps_per_call=steps_per_call,
        unroll=unroll,
        nan_policy=nan_policy,
        checkpoint_every=checkpoint_every,
        progress=progress,
        mesh=mesh,
        data_axis=data_axis,
    )
    if checkpoint_dir is None:
        return run(state, writer=None, start=0, history={})
    folder = os.fspath(checkpoint_dir)
    with runs.folder_lock(folder):
        state, start, history, description = open_run(
            folder,
            state,
            data=data,
            step_fn=step_fn,
            nan_policy=nan_policy,
            resume=resume,
            overwrite=overwrite,
            num_steps=num_steps,
            resume_hyperparams=resume_hyperparams,
            mesh=mesh,
            keep=keep_checkpoints,
        )
        runs.write_run(folder, description)
        writer = CheckpointWriter(folder, keep_checkpoints, asynchronous=True)
        try:
            return run(state, writer=writer, start=start, history=history)
        finally:
            writer.close()


def _run(
    step_fn,
    state,
    *,
    num_steps,
    data,
    steps_per_call,
    unroll,
    nan_policy,
    checkpoint_every,
    progress,
    mesh,
    data_axis,
    writer,
    start,
    history,
):
    with_data = data is not None
    if mesh is not None:
        replicated = NamedSharding(mesh, P())
        state = jax.device_put(state, replicated)
        if with_data:
            data = jax.device_put(data, replicated)
    convolves = _check_step(step_fn, state, data, with_data)
    if unroll is None:
        unroll = convolves and jax.default_backend() == "cpu"
    if steps_per_call is None:
        steps_per_call = 1 if unroll else 100

    try:
        hash(step_fn)
        build = _compiled_chunk
    except TypeError:  # an unhashable callable: compile without the cache
        build = _compiled_chunk.__wrapped__
    chunk = build(step_fn, nan_policy, with_data, int(steps_per_call), bool(unroll))
    bar = progress_bar(num_steps, progress, "train", initial=min(start, num_steps))
    if mesh is not None and mesh.shape[data_axis] > 1:
        warn_if_not_parallel(chunk, state, data, mesh, data_axis)
    step, stopped_at = start, None
    saved = start if writer is not None and start else None
    pending = {}  # rows recorded since the last save, for the metrics log
    context = jax.set_mesh(mesh) if mesh is not None else _null_context()
    try:
        with context:
            while step < num_steps:
                n = min(steps_per_call, num_steps - step)
                if checkpoint_every is not None:
                    n = min(n, checkpoint_every - step % checkpoint_every)
                state, stopped, (metrics, recorded, skipped) = chunk(
                    state, data, jnp.asarray(n, jnp.int32)
                )
                metrics, recorded, skipped, stopped = jax.device_get(
                    (metrics, recorded, skipped, bool(stopped))
                )
                done = int(recorded.sum())
                _append(history, metrics, recorded, skipped, step)
                _append(pending, metrics, recorded, skipped, step)
                step += done
                loss = metrics.get("loss")
                postfix = None
                if done and loss is not None and np.ndim(loss) == 1:
                    postfix = {"loss": float(loss[recorded][-1])}
                bar.update(done, postfix)
                if stopped:
                    stopped_at = step + 1
                    break
                if checkpoint_every is not None and step % checkpoint_every == 0:
                    _save(writer, state, step, pending)
                    saved = step
    finally:
        bar.close()
    out = _stack(history)
    if stopped_at is not None:
        message = (
            f"train: step {stopped_at} produced non-finite metrics or state; "
            f"stopped with the state after step {stopped_at - 1} "
            f"(nan_policy={nan_policy!r})"
        )
        if nan_policy == "raise":
            raise FloatingPointError(message)
        warnings.warn(message, NonFiniteWarning, stacklevel=3)
        out["stopped_at"] = np.asarray(stopped_at)
    elif writer is not None and step != saved:
        _save(writer, state, step, pending)
    if nan_policy == "skip" and step > start:
        new = out["skipped"][out["step"] > start]
        if new.any():
            warnings.warn(
                f"train: nan_policy='skip' skipped {int(new.sum())} of {len(new)} "
                "steps (non-finite metrics or state); their parameters were "
                "discarded. history['skipped'] marks them; a large share usually "
                "means a diverging learning rate",
                NonFiniteWarning,
                stacklevel=3,
            )
    return state, out


def _save(writer, state, step, pending):
    rows = _stack(pending)
    pending.clear()
    if rows:
        runs.write_rows(writer.folder, rows, rows["step"])
    writer.save(state, step)


class _null_context:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _append(history, metrics, recorded, skipped, step):
    rows = np.flatnonzero(recorded)
    for name, value in metrics.items():
        history.setdefault(name, []).append(np.asarray(value)[rows])
    history.setdefault("step", []).append(step + 1 + np.arange(len(rows)))
    history.setdefault("skipped", []).append(np.asarray(skipped)[rows])


def _stack(history):
    return {k: np.concatenate(v) for k, v in history.items()}
