"""The compiled chunk of :func:`genvi.train`: many steps in one jitted loop.

A chunk runs up to ``length`` steps of ``step_fn`` in one compiled
``lax.while_loop`` that updates the state in place (as a plain ``lax.scan``
would) and stops at the first non-finite step, which the host side then settles
by the NaN policy; or, for convolutional steps on the CPU, the same steps
written out one after another (XLA:CPU compiles convolutions inside a loop body
to a much slower path). Also the checks of a step function's signature.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np

RESERVED = ("step", "skipped")  # history keys a step's metrics may not use
REDUCE_OPERANDS = 32  # leaves summed by one variadic reduction (see _sums_finite)


def _inexact(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def _sums_finite(tree) -> jax.Array:
    """Whether the sum of every floating element of ``tree`` is finite.

    A NaN or inf element makes the sum non-finite (NaN and inf survive every
    addition), so ``True`` proves every element finite at the cost of one read
    of each leaf; ``False`` can also mean a sum that overflowed, which
    :func:`_all_finite` settles. Leaves of one shape are added elementwise and
    then reduced (one kernel per group, about two instructions per leaf, not
    one reduction and one flag per leaf), in groups of at most
    ``REDUCE_OPERANDS``, so the program grows linearly with the number of
    leaves and compiles fast.
    """
    groups: dict = {}
    for x in jax.tree_util.tree_leaves(tree):
        if _inexact(x):
            dtype = jnp.promote_types(jnp.result_type(x), jnp.float32)
            groups.setdefault((jnp.shape(x), dtype), []).append(
                jnp.asarray(x).astype(dtype)
            )
    sums = []
    for xs in groups.values():
        # XLA compiles one reduction of n operands in time superlinear in n
        # (measured for the variadic reduction this replaced: 500 leaves in
        # one 103 s, in groups of 32 16 s, one per leaf 36 s); the groups of
        # at most REDUCE_OPERANDS keep each elementwise sum's fusion as small.
        for i in range(0, len(xs), REDUCE_OPERANDS):
            part = xs[i : i + REDUCE_OPERANDS]
            sums.append(jnp.sum(functools.reduce(jnp.add, part)))
    if not sums:
        return jnp.asarray(True)
    return jnp.isfinite(functools.reduce(jnp.add, sums))


@jax.jit
def _all_finite(tree) -> jax.Array:
    """Whether every floating element of ``tree`` is finite (exact, slower)."""
    flags = [
        jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if _inexact(x)
    ]
    return jnp.all(jnp.stack(flags)) if flags else jnp.asarray(True)


@functools.lru_cache(maxsize=32)
def _compiled_chunk(
    step_fn, nan_policy: str, with_data: bool, length: int, unroll: bool = False
):
    """A function running ``length`` steps (the first ``num_active`` count).

    Returns ``chunk(state, data, num_active) -> (state, stopped, (metrics,
    recorded, skipped))`` with one row per step of the chunk. The steps run
    in one jitted ``lax.while_loop`` that updates the state in place, exactly
    like a plain ``lax.scan`` of ``step_fn`` (no second copy of the state, no
    per-step select), and leaves the loop at the first step with non-finite
    metrics or state. That rare step is then handled here: the same compiled
    loop replays the chunk from its input up to the step before (so the
    numbers are those of an uninterrupted run), and the policy picks the state
    to go on from.

    The loop that runs first checks only each step's metrics, and the state
    once after the loop: a state that turns non-finite makes the chunk run again
    with the per-step check of the state (a state that turned non-finite and
    back to finite within one chunk, which no gradient step does, is not seen).

    With ``unroll`` the steps are written out one after another instead of as
    the body of a loop (see :func:`train`'s ``unroll``): the program then has
    ``num_active`` steps (a static number) and the state advances only while
    every step so far was finite, which is what the loop computes.
    """
    call = jax.jit(
        (lambda s, d: step_fn(s, d)) if with_data else (lambda s, d: step_fn(s))
    )

    def make_loop(check_state: bool):
        def loop(state, data, num_active):
            # jit caches the trace: `call` runs step_fn once for shapes and loop
            _, shapes = jax.eval_shape(call, state, data)
            rows = jax.tree_util.tree_map(
                lambda m: jnp.zeros((length, *m.shape), m.dtype), shapes
            )

            def cond(carry):
                i, _, finite, _ = carry
                return (i < num_active) & finite

            def body(carry):
                i, state, _, rows = carry
                state, metrics = call(state, data)
                finite = _sums_finite(metrics)
                if check_state:
                    finite = finite & _sums_finite(state)
                rows = jax.tree_util.tree_map(
                    lambda r, m: r.at[i].set(m), rows, metrics
                )
                return i + 1, state, finite, rows

            start = (jnp.asarray(0, jnp.int32), state, jnp.asarray(True), rows)
            count, state, finite, rows = jax.lax.while_loop(cond, body, start)
            if not check_state:  # the state once, after the loop
                finite = finite & _sums_finite(state)
            return count, state, finite, rows

        return jax.jit(loop)

    def run_unrolled(state, data, num_active):
        _, shapes = jax.eval_shape(call, state, data)
        rows = jax.tree_util.tree_map(
            lambda m: jnp.zeros((length, *m.shape), m.dtype), shapes
        )
        count, finite = jnp.asarray(0, jnp.int32), jnp.asarray(True)
        for i in range(int(num_active)):
            new, metrics = call(state, data)
            ok = _sums_finite(metrics) & _sums_finite(new)
            active = finite  # the loop would run this step

            def keep(n, o, active=active):
                return jnp.where(active, n, o)

            state = jax.tree_util.tree_map(keep, new, state)
            rows = jax.tree_util.tree_map(
                lambda r, m, i=i, active=active: r.at[i].set(
                    jnp.where(active, m, r[i])
                ),
                rows,
                metrics,
            )
            count = count + active.astype(jnp.int32)
            finite = finite & ok
        return count, state, finite, rows

    # Two loops: `fast` checks only the metrics in each step and the state once
    # at the end of the chunk (no per-step read of the whole state: a program the
    # size and speed of a plain scan); `run` checks metrics and state in every
    # step. A chunk runs `fast`; only when that finds anything non-finite does the
    # chunk run again from its input with `run` (compiled then), which locates the
    # first non-finite step exactly.
    if unroll:
        run = fast = jax.jit(run_unrolled, static_argnums=2)
    else:
        run, fast = make_loop(True), make_loop(False)

    def chunk(state, data, num_active):
        num_active = int(num_active)
        metrics, recorded, skipped = (
            None,
            np.zeros(length, bool),
            np.zeros(length, bool),
        )
        done, stopped = 0, False
        while done < num_active:
            todo = np.int32(num_active - done)
            if not unroll:
                count, new, finite, rows = fast(state, data, todo)
                if bool(finite):
                    count, rows = jax.device_get((count, rows))
                    metrics = _store(metrics, rows, done, int(count))
                    recorded[done : done + int(count)] = True
                    state, done = new, done + int(count)
                    continue
            count, new, finite, rows = run(state, data, todo)
            count, finite, rows = jax.device_get((count, finite, rows))
            count, finite = int(count), bool(finite)
            if not finite:  # a sum that overflowed, or a real NaN / inf
                finite = bool(
                    _all_finite((new, {k: v[count - 1] for k, v in rows.items()}))
                )
            good = count if finite else count - 1
            metrics = _store(metrics, rows, done, count)
            recorded[done : done + good] = True
            if finite:
                state, done = new, done + count
                continue
            before = state if good == 0 else run(state, data, np.int32(good))[1]
            if nan_policy != "skip":
                state, stopped = before, True
                break
            # Integer leaves (PRNG keys, counters) advance, so that the next
            # step draws fresh numbers instead of repeating the failed one.
            state = jax.tree_util.tree_map(
                lambda n, o: o if _inexact(n) else n, new, before
            )
            recorded[done + good] = skipped[done + good] = True
            done += count
        if metrics is None:  # no active step
            _, shapes = jax.eval_shape(call, state, data)
            metrics = {
                k: np.zeros((length, *m.shape), m.dtype) for k, m in shapes.items()
            }
        return state, stopped, (metrics, recorded, skipped)

    chunk.loop = fast  # the program every chunk runs, for cost and size checks
    return chunk


def _store(metrics, rows, done: int, count: int) -> dict:
    """Copies the first ``count`` rows of a chunk's metrics to ``done``."""
    if metrics is None:
        metrics = {k: np.zeros_like(v) for k, v in rows.items()}
    for k, v in rows.items():
        metrics[k][done : done + count] = v[:count]
    return metrics


def _has_convolution(jaxpr) -> bool:
    """Whether a jaxpr, or one nested in it (scan, cond, jit...), convolves."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name == "conv_general_dilated":
            return True
        for param in eqn.params.values():
            for sub in param if isinstance(param, tuple | list) else (param,):
                inner = getattr(sub, "jaxpr", sub)
                if hasattr(inner, "eqns") and _has_convolution(inner):
                    return True
    return False


def _check_step(step_fn, state, data, with_data) -> bool:
    """Checks the step's signature; returns whether it contains a convolution."""
    try:
        jaxpr, out = jax.make_jaxpr(
            (lambda s, d: step_fn(s, d)) if with_data else (lambda s, d: step_fn(s)),
            return_shape=True,
        )(state, data)
    except TypeError as e:
        raise TypeError(f"train: calling `step_fn` failed: {e}") from e
    if not (isinstance(out, tuple) and len(out) == 2):
        raise TypeError(
            "train: `step_fn` must return a pair (state, metrics), got "
            f"{type(out).__name__}"
        )
    new, metrics = out
    spec_in = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), state)
    spec_out = jax.tree_util.tree_map(lambda x: (x.shape, x.dtype), new)
    if jax.tree_util.tree_structure(state) != jax.tree_util.tree_structure(
        new
    ) or jax.tree_util.tree_leaves(spec_in) != jax.tree_util.tree_leaves(spec_out):
        raise TypeError(
            "train: `step_fn` must return a state with the tree structure, shapes "
            "and dtypes of its input; got input "
            f"{jax.tree_util.tree_map(lambda x: f'{x.dtype}{list(x.shape)}', state)} "
            "and output "
            f"{jax.tree_util.tree_map(lambda x: f'{x.dtype}{list(x.shape)}', new)}"
        )
    if not isinstance(metrics, Mapping) or not all(isinstance(k, str) for k in metrics):
        raise TypeError(
            "train: `step_fn` must return metrics as a dict with str keys, got "
            f"{type(metrics).__name__}"
        )
    for name in RESERVED:
        if name in metrics:
            raise ValueError(
                f"train: metric name {name!r} is reserved for the history; rename it"
            )
    return _has_convolution(jaxpr.jaxpr)
