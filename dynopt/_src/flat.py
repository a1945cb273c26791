r"""Flat parameter storage: a few contiguous buffers with a pytree view.

An elementwise optimiser step is memory-bound, and on a tree of many small
leaves every leaf is a separate argument, result and kernel of the jitted step
(about 2 us each on XLA:CPU). :class:`FlatParams` keeps all leaves of one dtype
in one 1-D buffer (optionally cut into buckets of a given size); it is itself a
pytree whose leaves are those buffers, so any elementwise optax or dynopt
transform runs on it unchanged, one kernel per buffer. The model sees the usual
pytree through :meth:`FlatParams.tree`, whose slices are views inside ``jit``
and whose gradient is a single concatenation back into the buffer.

Compile cost: a slice at a constant offset becomes part of every kernel that
reads it, so reading ``L`` leaves at ``L`` offsets used to compile ``L``
distinct kernels on XLA:CPU (about 40 ms each). Inside ``jit`` the views are
dynamic slices at offsets XLA sees as runtime values, so leaves of one shape
share their kernels as on the pytree, and the gradient through the view is
still one concatenation per buffer. ``python -m benchmarks.compile_scale``
measures the compile time against the number of leaves.

On a device mesh, use the pytree itself: the optimiser step on sharded
buffers needs no communication, but the model's reads through
:meth:`FlatParams.tree` of a sharded buffer cut it at leaf offsets that do not
follow the shards, which costs collectives (all-gathers, collective-permutes)
in every step, where the same pytree sharded leaf by leaf costs none
(``tests/genvi/test_parallel_checks.py`` counts them in the compiled HLO).
Flat storage is for one device.

Typical step::

    flat = dynopt.flatten(params)
    opt_state = tx.init(flat)

    @jax.jit
    def step(flat, opt_state, batch):
        grads = jax.grad(lambda f: loss_fn(f.tree(), batch))(flat)
        updates, opt_state = tx.update(grads, opt_state, flat)
        return optax.apply_updates(flat, updates), opt_state
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

from .base import Optimizer


@dataclasses.dataclass(frozen=True)
class FlatLayout:
    """Where each leaf of a pytree lives in the buffers (static, hashable).

    Attributes:
      treedef: the structure of the original pytree.
      shapes: shape of each leaf, in tree-leaf order.
      dtypes: dtype name of each leaf.
      buffer_of: index of the buffer holding each leaf.
      offsets: start of each leaf inside its buffer.
      buffer_sizes: number of elements of each buffer.
      buffer_dtypes: dtype name of each buffer.
    """

    treedef: Any
    shapes: tuple
    dtypes: tuple
    buffer_of: tuple
    offsets: tuple
    buffer_sizes: tuple
    buffer_dtypes: tuple

    def leaves_in(self, b: int) -> list[int]:
        """Indices of the leaves stored in buffer ``b``, in buffer order."""
        return [i for i, j in enumerate(self.buffer_of) if j == b]


def _layout(leaves, treedef, bucket_bytes) -> FlatLayout:
    shapes = tuple(tuple(np.shape(x)) for x in leaves)
    dtypes = tuple(jnp.result_type(x).name for x in leaves)
    buffer_of, offsets, sizes, bdtypes = [], [], [], []
    current: dict[str, int] = {}  # dtype -> index of the buffer being filled
    for shape, dtype in zip(shapes, dtypes):
        n = math.prod(shape)
        b = current.get(dtype)
        itemsize = jnp.dtype(dtype).itemsize
        full = (
            b is not None
            and bucket_bytes is not None
            and sizes[b] > 0
            and (sizes[b] + n) * itemsize > bucket_bytes
        )
        if b is None or full:
            b = len(sizes)
            sizes.append(0)
            bdtypes.append(dtype)
            current[dtype] = b
        buffer_of.append(b)
        offsets.append(sizes[b])
        sizes[b] += n
    return FlatLayout(
        treedef,
        shapes,
        dtypes,
        tuple(buffer_of),
        tuple(offsets),
        tuple(sizes),
        tuple(bdtypes),
    )


def _pack(layout: FlatLayout, leaves) -> tuple:
    buffers = []
    for b, dtype in enumerate(layout.buffer_dtypes):
        parts = [jnp.ravel(leaves[i]).astype(dtype) for i in layout.leaves_in(b)]
        # one concatenation: this is also the transpose of the slicing in tree()
        buffers.append(parts[0] if len(parts) == 1 else jnp.concatenate(parts))
    return tuple(buffers)


def _split(layout: FlatLayout, b: int, buf) -> list:
    """The leaves of buffer ``b`` as slices at static offsets (``lax.split``,
    whose transpose is one concatenation)."""
    idx = layout.leaves_in(b)
    sizes = [math.prod(layout.shapes[i]) for i in idx]
    parts = [buf] if len(idx) == 1 else lax.split(buf, sizes)
    return [part.reshape(layout.shapes[i]) for i, part in zip(idx, parts)]


def _static_views(layout: FlatLayout, buffers) -> tuple:
    """The leaves as slices of the buffers at static offsets."""
    leaves: list[Any] = [None] * len(layout.shapes)
    for b, buf in enumerate(buffers):
        for i, leaf in zip(layout.leaves_in(b), _split(layout, b, buf)):
            leaves[i] = leaf
    return tuple(leaves)


def _runtime_offsets(buf, offsets: list[int]) -> tuple:
    """``offsets`` as int32 scalars that XLA cannot fold into constants.

    A slice at a constant offset becomes part of each kernel that reads it, so
    a step reading ``L`` leaves compiles ``L`` distinct kernels (about 40 ms
    each on XLA:CPU). With the offset a runtime value, the kernels of leaves of
    one shape are the same code and compile once. The offsets come out of a
    loop whose bound depends on the data and which runs zero times; XLA
    cannot prove that, so it keeps them as values (``test_compile_scale_guard``
    checks that the kernels stay shared).
    """
    n = jnp.real(buf[0]).astype(jnp.int32)
    init = (n, tuple(jnp.asarray(o, jnp.int32) for o in offsets))
    # The body rotates the offsets, so that no offset is a function of the trip
    # count alone (XLA rewrites such induction variables as constants + one).
    return lax.while_loop(
        lambda c: c[0] < n, lambda c: (c[0] + 1, c[1][1:] + c[1][:1]), init
    )[1]


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _views(layout: FlatLayout, buffers) -> tuple:
    """The leaves of ``buffers``: dynamic slices at runtime offsets.

    Differentiation goes through :func:`_static_views` (below), so reverse mode
    assembles a buffer's gradient in one concatenation, with no slice or
    update per leaf, and forward mode works as well.
    """
    leaves: list[Any] = [None] * len(layout.shapes)
    for b, buf in enumerate(buffers):
        idx = layout.leaves_in(b)
        traced = isinstance(buf, jax.core.Tracer)
        if len(idx) == 1 or not traced or not 0 < buf.size < 2**31:
            # one leaf, eager code (no kernels to share), or offsets past int32
            for i, leaf in zip(idx, _split(layout, b, buf)):
                leaves[i] = leaf
            continue
        offsets = _runtime_offsets(buf, [layout.offsets[i] for i in idx])
        for i, start in zip(idx, offsets):
            size = math.prod(layout.shapes[i])
            leaves[i] = lax.dynamic_slice(buf, (start,), (size,)).reshape(
                layout.shapes[i]
            )
    return tuple(leaves)


@_views.defjvp
def _views_jvp(layout, primals, tangents):
    (buffers,), (dbuffers,) = primals, tangents
    return _views(layout, buffers), _static_views(layout, dbuffers)


@jax.tree_util.register_pytree_node_class
class FlatParams:
    """Parameters (or gradients, updates, optimiser buffers) in flat buffers.

    A pytree whose leaves are the 1-D buffers (one per dtype, or per bucket),
    with the original structure kept in a static :class:`FlatLayout`. Pass it to
    ``jax.grad``, optax / dynopt transforms and ``optax.apply_updates`` as any
    pytree; call :meth:`tree` for the usual view.

    Attributes:
      buffers: tuple of 1-D arrays.
      layout: the static :class:`FlatLayout`.
    """

    __slots__ = ("buffers", "layout")

    def __init__(self, buffers, layout: FlatLayout):
        self.buffers = tuple(buffers)
        self.layout = layout

    def tree_flatten(self):
        return self.buffers, self.layout

    @classmethod
    def tree_unflatten(cls, layout, buffers):
        return cls(buffers, layout)

    def tree(self):
        """The original pytree; inside ``jit`` its leaves are slices of the buffers."""
        leaves = _views(self.layout, self.buffers)
        return jax.tree_util.tree_unflatten(self.layout.treedef, list(leaves))

    def replace(self, tree) -> FlatParams:
        """A :class:`FlatParams` with this layout holding the leaves of ``tree``.

        Raises:
          ValueError: ``tree`` has another structure or other leaf shapes.
        """
        leaves, treedef = jax.tree_util.tree_flatten(tree)
        if treedef != self.layout.treedef:
            raise ValueError(
                "FlatParams.replace: `tree` must have the structure the buffers "
                f"were built from, {self.layout.treedef}, got {treedef}"
            )
        shapes = tuple(tuple(np.shape(x)) for x in leaves)
        if shapes != self.layout.shapes:
            raise ValueError(
                "FlatParams.replace: `tree` leaf shapes must be "
                f"{self.layout.shapes}, got {shapes}"
            )
        return FlatParams(_pack(self.layout, leaves), self.layout)

    @property
    def size(self) -> int:
        """Total number of elements."""
        return sum(self.layout.buffer_sizes)

    @property
    def num_leaves(self) -> int:
        """Number of leaves of the pytree view."""
        return len(self.layout.shapes)

    def __repr__(self):
        bufs = ", ".join(
            f"{d}[{n}]"
            for d, n in zip(self.layout.buffer_dtypes, self.layout.buffer_sizes)
        )
        return f"FlatParams({self.num_leaves} leaves in {bufs})"


def flatten(params, *, bucket_bytes: int | None = None) -> FlatParams:
    r"""Packs a pytree of arrays into contiguous buffers, one per dtype.

    Leaves keep their order; leaves of one dtype go to one buffer, or to
    consecutive buckets of at most ``bucket_bytes`` bytes (a leaf larger than a
    bucket gets one to itself). The result is a pytree; its :meth:`~FlatParams.tree`
    gives the original structure back, and differentiating through that view
    yields the gradient as buffers of the same layout.

    Args:
      params: a pytree of arrays (a dict, an ``nnx.State``, ...), non-empty.
      bucket_bytes: optional upper bound on a buffer's size in bytes.

    Returns:
      A :class:`FlatParams`.

    Raises:
      ValueError: ``params`` has no leaves, or ``bucket_bytes`` is not positive.
      TypeError: a leaf is not an array or number.

    Example:
      >>> import dynopt, jax.numpy as jnp
      >>> flat = dynopt.flatten({"w": jnp.ones((2, 3)), "b": jnp.zeros(3)})
      >>> flat
      FlatParams(2 leaves in float32[9])
      >>> flat.tree()["w"].shape
      (2, 3)
    """
    if bucket_bytes is not None and (
        isinstance(bucket_bytes, bool)
        or not isinstance(bucket_bytes, int)
        or bucket_bytes <= 0
    ):
        raise ValueError(
            f"flatten: `bucket_bytes` must be a positive int or None, got "
            f"{bucket_bytes!r}"
        )
    leaves, treedef = jax.tree_util.tree_flatten(params)
    if not leaves:
        raise ValueError(
            f"flatten: `params` must have at least one leaf, got {params!r}"
        )
    for x in leaves:
        if not isinstance(x, jax.Array | np.ndarray | np.generic | int | float):
            raise TypeError(
                f"flatten: every leaf of `params` must be an array, got {type(x)!r}"
            )
    layout = _layout(leaves, treedef, bucket_bytes)
    return FlatParams(_pack(layout, leaves), layout)


def _require_flat(fn: str, name: str, x) -> None:
    if not isinstance(x, FlatParams):
        raise TypeError(
            f"{fn}: `{name}` must be a dynopt.FlatParams (use dynopt.flatten), "
            f"got {type(x).__name__}"
        )


def flat_optimizer(
    tx: optax.GradientTransformation, *, elementwise: bool = True
) -> optax.GradientTransformationExtraArgs:
    r"""Runs an optax / dynopt transform on :class:`FlatParams`.

    Elementwise transforms (SGD, momentum, Nesterov, Adam, weight decay, global
    norm clipping, ...) act on the buffers directly: the state is flat too and
    the step is one kernel per buffer. A transform that needs the leaves (per-
    leaf norms such as LARS/LAMB trust ratios, masks by name) is run on the tree
    view with ``elementwise=False``; the parameters and gradients stay flat and
    only its updates are packed back.

    Args:
      tx: any ``optax.GradientTransformation`` (a dynopt optimiser included).
      elementwise: whether ``tx`` treats every element the same way.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` (a :class:`~dynopt.Optimizer`
      carrying the ``dynamics`` of ``tx``, None for a plain optax ``tx``) whose
      ``init`` and ``update`` take :class:`FlatParams`.

    Raises:
      TypeError: ``tx`` is not a transform, or (at ``init`` / ``update``) the
        parameters or updates are not :class:`FlatParams`.

    Example:
      >>> import dynopt, jax.numpy as jnp, optax
      >>> flat = dynopt.flatten({"w": jnp.ones(2), "b": jnp.ones(1)})
      >>> tx = dynopt.flat_optimizer(dynopt.momentum(0.1, 0.9))
      >>> u, s = tx.update(flat, tx.init(flat), flat)
      >>> optax.apply_updates(flat, u).tree()["w"]
      Array([0.9, 0.9], dtype=float32)
    """
    if not (hasattr(tx, "init") and hasattr(tx, "update")):
        raise TypeError(
            f"flat_optimizer: `tx` must be an optax GradientTransformation, got {tx!r}"
        )
    if not isinstance(elementwise, bool):
        raise TypeError(
            f"flat_optimizer: `elementwise` must be a bool, got {elementwise!r}"
        )
    dynamics = getattr(tx, "dynamics", None)  # the same flow, scheme and clock
    tx = optax.with_extra_args_support(tx)

    def init_fn(params):
        _require_flat("flat_optimizer.init", "params", params)
        return tx.init(params if elementwise else params.tree())

    def update_fn(updates, state, params=None, **extra_args):
        _require_flat("flat_optimizer.update", "updates", updates)
        if params is not None:
            _require_flat("flat_optimizer.update", "params", params)
        if elementwise:
            return tx.update(updates, state, params, **extra_args)
        tree_params = None if params is None else params.tree()
        u, state = tx.update(updates.tree(), state, tree_params, **extra_args)
        return updates.replace(u), state

    return Optimizer(init_fn, update_fn, dynamics)
