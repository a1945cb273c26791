"""Every tolerance of the test suite, in one place, with the reason for it."""

# Iterates of two implementations of the same float64 arithmetic, long runs.
F64_ITERATES = dict(rtol=1e-12, atol=1e-12)
# Same float32 arithmetic in a different association order (one rounding per op).
F32_ITERATES = dict(rtol=1e-5, atol=1e-6)
# Reference numbers printed with 3-4 significant digits in docs/reference.md.
REFERENCE_3SIG = dict(rtol=5e-3, atol=0.0)
REFERENCE_4DEC = dict(rtol=0.0, atol=5e-5)
# Log-log slopes of an order-of-accuracy test (diffrax's test_ode_order uses 0.2).
ORDER_SLOPE = 0.2

# genvi
# Reference numbers with 6 decimals in docs/reference.md (half a unit in the last).
REFERENCE_6DEC = dict(rtol=0.0, atol=5e-7)
# Two float64 evaluations of the same closed form, in different orders of operations.
F64_CLOSED_FORM = dict(rtol=1e-10, atol=1e-10)
# A Monte-Carlo mean against its exact expectation: within this many standard errors
# (computed from the samples); a false alarm has probability about 6e-5 per check.
MC_SIGMAS = 4.0
# A log-likelihood that must not decrease (EM), float64: only rounding may lower it.
F64_MONOTONE = 1e-10

# dynopt trajectory laboratory
# A float64 diffrax solve at rtol = atol = 1e-10 against a closed form, over a
# horizon of a few hundred time units (global error grows with the horizon).
ODE_SOLVE_F64 = dict(rtol=0.0, atol=1e-7)
# The same at rtol = atol = 1e-12 over a few time units, saved at step ends: the
# global error stays near the per-step tolerance (float32 cannot get below 1e-7).
ODE_SOLVE_F64_SHORT = dict(rtol=0.0, atol=1e-12)
# Hessian damping by a central gradient difference against the exact
# Hessian-vector product. The default step h ~ eps^(1/3) balances truncation
# O(h^2) and rounding O(eps / h): relative error ~ eps^(2/3) times the ratio of
# third to second derivatives, 4e-11 in float64 (seen: at most 2e-10) ...
HESSIAN_FINITE_DIFFERENCE = dict(rtol=1e-9, atol=1e-12)
# ... and 2.4e-5 in float32 (seen: at most 1.4e-4), relative to max |H v|.
HESSIAN_FINITE_DIFFERENCE_F32 = 1e-3
# Power iteration (float64) run to convergence (hundreds of iterations on tiny nets).
POWER_ITERATION = dict(rtol=1e-6, atol=0.0)
# Stability limits found by bisection to 1e-7 on a float64 spectral radius.
STABILITY_BISECTION = dict(rtol=0.0, atol=1e-5)

# dynopt: stochastic view
# Closed forms vs an independent float64 computation of the same quantity
# (recursions, scipy ODE/Lyapunov solvers at tight tolerances).
CLOSED_FORM = dict(rtol=1e-9, atol=1e-12)
# A root or optimum found by scipy's bounded scalar minimiser and brentq
# (xatol 1e-12, xtol 1e-10) inside another root find.
SCIPY_OPTIMIZE = dict(rtol=1e-6, atol=0.0)

# A learned discriminator against the closed-form optimum (docs/reference.md G2): 1e-2.
OPTIMAL_DISCRIMINATOR_ATOL = 1e-2
