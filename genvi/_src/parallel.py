"""Is a data-parallel run parallel? Collectives counted in compiled HLO."""

from __future__ import annotations

import re
import warnings

import jax
import numpy as np

_COLLECTIVES = re.compile(r"\b(all-reduce|reduce-scatter|all-gather|all-to-all)")


def collective_count(compiled_text: str) -> int:
    """The number of cross-device reductions and gathers in compiled HLO text."""
    return len(_COLLECTIVES.findall(compiled_text))


def warn_if_not_parallel(chunk, state, data, mesh, data_axis) -> None:
    """Warns when the compiled step has no collective: no data parallelism.

    A step that splits its batch over the mesh all-reduces its gradients (or
    reduce-scatters them); one whose program has no collective at all computes
    the whole step on every device. Counted in the compiled HLO of the chunk
    (the compilation is cached, so the run itself does not compile again).
    """
    with jax.set_mesh(mesh):
        # `chunk.loop` is the compiled program of genvi.train's chunk; the count
        # of active steps is an int32 (a static one when the steps are unrolled)
        lowered = chunk.loop.lower(state, data, np.int32(1))
        text = lowered.compile().as_text()
    if collective_count(text) == 0:
        warnings.warn(
            f"train: the step runs on a mesh of {mesh.shape[data_axis]} devices "
            f"(axis {data_axis!r}) but its compiled program has no all-reduce or "
            "other collective: every device computes the whole step, with no data "
            "parallelism. Draw batches with genvi.sample_batch or shard them with "
            "genvi.shard_batch inside the step",
            UserWarning,
            stacklevel=5,
        )
