r"""Adversarial training with any dynopt game scheme.

With ``game_scheme`` given, a trainer's ``step`` (one cycle) is one step of the
scheme on the two-player game (generator side, discriminator) whose losses are
the trainer's losses on this cycle's minibatch (one batch per cycle, shared by
every evaluation inside the step, e.g. the look-ahead of extragradient; the
same batches as the phase engine with ``n_d = n_g = 1``):

.. math:: z^+ = \mathrm{step}(z;\, h), \qquad v(z) = \big(-P_G \nabla_G L_G,\,
          -P_D \nabla_D L_D\big),

``h`` being ``state.hyper["step_size"]``. Without ``rms_decay`` the field is the
plain one (:math:`P = I`); with it, an RMS metric
:math:`P = (\sqrt{\hat\nu} + \epsilon)^{-1}`, :math:`\nu` an exponential average
of the mean squared gradient of each array at the start of each cycle (bias
corrected; one number per array, so that no coordinate gets a huge step where
its gradient vanished at the start), held fixed during the cycle, so the
scheme's geometry is the same at every point it evaluates. ``G_old`` (Su's
regulariser, ``reg_weight``) is the generator at the start of the cycle; the
EMA of the generator is updated once per cycle.
Metrics are the players' losses at the start of the cycle (both players).
The scheme's memory (previous field, momentum buffers) lives in
``state.opt_states["game"]``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

from dynopt import Game, GameScheme, GameState

from .adversarial import Adversarial, AdversarialState, _engine

RMS_EPSILON = 1e-8


def check_game_options(
    fn: str, game_scheme, step_size, rms_decay, g_optimizer, d_optimizer
) -> bool:
    """Checks the game-scheme arguments; True when a scheme is used."""
    if game_scheme is None:
        for name, value in (("step_size", step_size), ("rms_decay", rms_decay)):
            if value is not None:
                raise ValueError(
                    f"{fn}: `{name}` is used only with `game_scheme`, got {value!r}"
                )
        return False
    if not isinstance(game_scheme, GameScheme):
        raise TypeError(
            f"{fn}: `game_scheme` must be a dynopt game scheme (e.g. "
            f"dynopt.game_scheme('extragradient')), got {game_scheme!r}"
        )
    for name, value in (("g_optimizer", g_optimizer), ("d_optimizer", d_optimizer)):
        if value is not None:
            raise ValueError(
                f"{fn}: `{name}` must be None with `game_scheme` (the scheme moves "
                f"both players with `step_size`), got {value!r}"
            )
    if isinstance(step_size, bool) or not isinstance(step_size, numbers.Real):
        raise TypeError(
            f"{fn}: `step_size` must be a real number with `game_scheme`, "
            f"got {step_size!r}"
        )
    if not step_size > 0:
        raise ValueError(f"{fn}: `step_size` must be > 0, got {step_size!r}")
    if rms_decay is not None:
        if isinstance(rms_decay, bool) or not isinstance(rms_decay, numbers.Real):
            raise TypeError(
                f"{fn}: `rms_decay` must be a real number or None, got {rms_decay!r}"
            )
        if not 0 <= rms_decay < 1:
            raise ValueError(
                f"{fn}: `rms_decay` must satisfy 0 <= rms_decay < 1, got {rms_decay!r}"
            )
    return True


def game_engine(
    gen_nets: dict,
    disc_net,
    *,
    game_scheme: GameScheme,
    d_loss: Callable,
    g_loss: Callable,
    sampler: Callable,
    hyper: dict,
    rms: bool,
    distance: Callable | None = None,
) -> Adversarial:
    """init / step / sample of a trainer whose cycle is one game-scheme step.

    ``d_loss`` and ``g_loss`` are the engine's losses (see ``_engine``);
    ``hyper`` must hold ``step_size`` (and ``rms_decay`` when ``rms``);
    ``distance(gen, gen_old, key)`` is the generator distance of Su's scheme.
    """
    names = sorted(gen_nets)

    def make_game(state, k_d, k_g, gen_old, scale):
        hp, data = state.hyper, state.data

        def g_value(params):
            return g_loss(params[0], gen_old, params[1], k_g, hp, data).loss

        def d_value(params):
            return d_loss(params[1], params[0], k_d, hp, data).loss

        losses = (g_value, d_value)
        if scale is not None:
            # Scaling player i's gradient by P_i: the loss <P_i, .> is not a
            # loss, so the field is built directly (see PreconditionedGame).
            return _PreconditionedGame(
                losses=losses,
                scale=scale,
                generator_distance=_bind(distance, k_g),
            )
        return Game(losses=losses, generator_distance=_bind(distance, k_g))

    def init(key, data=None):
        keys = jax.random.split(key, len(names) + 2)
        gen = {n: gen_nets[n].init(k) for n, k in zip(names, keys)}
        disc = disc_net.init(keys[-2])
        dtype = jax.tree.leaves(gen)[0].dtype
        hyper_arrays = {k: jnp.asarray(v, dtype) for k, v in hyper.items()}
        params = (gen, disc)
        state = AdversarialState(
            params={"generator": gen, "discriminator": disc},
            opt_states={},
            ema=gen,
            hyper=hyper_arrays,
            key=keys[-1],
            step=jnp.zeros((), jnp.int32),
            data=data,
        )
        k_d, k_g = jax.random.split(keys[-1])
        game = make_game(state, k_d, k_g, gen, _unit_scale(params) if rms else None)
        opt_states = {"game": game_scheme.init(game, params).memory}
        if rms:
            opt_states["second_moment"] = jax.tree.map(
                lambda p: jnp.zeros((), p.dtype), params
            )
        return state._replace(opt_states=opt_states)

    def step(state):
        key, k_d, k_g = jax.random.split(state.key, 3)
        # The batches of the phase engine with n_d = n_g = 1.
        k_d, k_g = jax.random.split(k_d, 1)[0], jax.random.split(k_g, 1)[0]
        gen, disc = state.params["generator"], state.params["discriminator"]
        hp = state.hyper
        (_, d_aux), d_grad = jax.value_and_grad(
            lambda p: tuple(d_loss(p, gen, k_d, hp, state.data)), has_aux=True
        )(disc)
        (_, g_aux), g_grad = jax.value_and_grad(
            lambda p: tuple(g_loss(p, gen, disc, k_g, hp, state.data)), has_aux=True
        )(gen)
        opt_states = dict(state.opt_states)
        scale = None
        if rms:
            decay = hp["rms_decay"]
            # One mean square per array (not per coordinate): the metric is
            # frozen for the cycle, and a coordinate whose gradient happens to
            # vanish at the cycle's start (a dead ReLU unit) would otherwise get
            # a 1/epsilon step wherever else the scheme evaluates the field.
            nu = jax.tree.map(
                lambda n, g: decay * n + (1 - decay) * jnp.mean(jnp.square(g)),
                opt_states["second_moment"],
                (g_grad, d_grad),
            )
            opt_states["second_moment"] = nu
            correction = 1 - decay ** (state.step + 1).astype(decay.dtype)
            scale = jax.tree.map(
                lambda n: 1 / (jnp.sqrt(n / correction) + RMS_EPSILON), nu
            )
        game = make_game(state, k_d, k_g, gen, scale)
        new = game_scheme.step(
            game, GameState((gen, disc), opt_states["game"]), hp["step_size"]
        )
        opt_states["game"] = new.memory
        gen, disc = new.params
        decay = hp["ema_decay"]
        ema = jax.tree.map(lambda e, p: decay * e + (1 - decay) * p, state.ema, gen)
        metrics = {f"d_{k}": v for k, v in d_aux.items()}
        metrics.update({f"g_{k}": v for k, v in g_aux.items()})
        out = AdversarialState(
            params={"generator": gen, "discriminator": disc},
            opt_states=opt_states,
            ema=ema,
            hyper=state.hyper,
            key=key,
            step=state.step + 1,
            data=state.data,
        )
        return out, metrics

    def sample(state, key, n, ema=False):
        return sampler(state.ema if ema else state.params["generator"], key, n)

    return Adversarial(init, step, sample)


def _bind(distance, key):
    if distance is None:
        return None
    return lambda p, p_old: distance(p, p_old, key)


def _unit_scale(params):
    return jax.tree.map(jnp.ones_like, params)


class _PreconditionedGame(Game):
    """A game whose field is ``-P_i grad_i L_i``, ``P`` a fixed diagonal metric.

    Added terms of a scheme are terms of the losses: consensus penalises the
    losses' field :math:`|v|^2` (not :math:`|Pv|^2`), and its gradient goes
    through :math:`P` like the losses' (RMSProp on the consensus gradient).
    """

    scale: tuple = ()

    def precondition(self, i, tree):
        return jax.tree.map(jnp.multiply, tree, self.scale[i])


def placeholder_optimizers(uses_game: bool, g_optimizer, d_optimizer):
    """The players' optimisers, or identities when a game scheme moves them."""
    if uses_game:
        return optax.identity(), optax.identity()
    return g_optimizer, d_optimizer


def build_engine(
    fn: str,
    gen_nets: dict,
    disc_net,
    *,
    game_scheme,
    step_size,
    rms_decay,
    schedule: dict,
    hyper: dict,
    distance: Callable | None = None,
    **losses,
) -> Adversarial:
    """The phase engine of ``adversarial`` or, with a game scheme, ``game_engine``."""
    if game_scheme is None:
        return _engine(gen_nets, disc_net, hyper=hyper, **schedule, **losses)
    for name in ("n_d", "n_g"):
        if schedule[name] != 1:
            raise ValueError(
                f"{fn}: `{name}` must be 1 with `game_scheme` (set the scheme's "
                f"own steps, e.g. dynopt.AlternatingSteps(n_d=5)), "
                f"got {schedule[name]!r}"
            )
    hyper = {**hyper, "step_size": step_size}
    if rms_decay is not None:
        hyper["rms_decay"] = rms_decay
    return game_engine(
        gen_nets,
        disc_net,
        game_scheme=game_scheme,
        hyper=hyper,
        rms=rms_decay is not None,
        distance=distance,
        **losses,
    )


def record_params(step: Callable, select: Callable | None = None) -> Callable:
    """A training step that also reports (part of) its parameters as metrics.

    ``record_params(trainer.step)`` returns ``state -> (state, metrics)`` whose
    metrics hold ``"params"``: ``select(state)`` after the step (default:
    ``state.params``), so a scanned run (``genvi.run_cycles``, ``genvi.train``)
    keeps the parameter trajectory beside the losses.
    """
    select = (lambda s: s.params) if select is None else select

    def recorded(state):
        state, metrics = step(state)
        return state, {**metrics, "params": select(state)}

    return recorded
