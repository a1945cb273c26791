"""Smoke test of benchmarks/compile_scale.py."""

import numpy as np
import pytest

from benchmarks import compile_scale
from tests.benchmarks._smoke import run_quick


def test_quick_run_writes_its_files(tmp_path):
    metrics = run_quick(compile_scale, tmp_path, "compile_scale.png")
    contenders = set(compile_scale.CONTENDERS)
    for sweep in ("leaf_sweep", "param_sweep"):
        rows = metrics[sweep]
        assert {r["contender"] for r in rows} == contenders
        for r in rows:
            assert r["compile_s"] > 0 and r["step_s"] > 0
            assert r["hlo_instructions"] > 0 and r["peak_bytes"] >= r["temp_bytes"]
    for table in ("exponents_vs_leaves", "exponents_vs_params"):
        assert set(metrics[table]) == contenders
        assert all(
            np.isfinite(v) for row in metrics[table].values() for v in row.values()
        )
    assert len(metrics["loop_vs_scan"]) == 4  # two sizes in each sweep
    assert set(metrics["update_instructions_per_leaf"]) == {"adam"}


def test_slope_is_the_growth_exponent():
    x = np.array([10.0, 100.0, 1000.0])
    assert np.isclose(compile_scale.slope(x, 3 * x**2), 2.0)
    assert np.isclose(compile_scale.slope(x, 5 * x), 1.0)


def test_compile_repeats_record_every_compilation_and_the_median():
    row = compile_scale.measure("optax_tree", 2, 4, "sgd", 2, 1, compile_repeats=3)
    assert len(row["compile_s_all"]) == 3
    assert row["compile_s"] == np.median(row["compile_s_all"])


def test_compile_repeats_below_one_are_refused(tmp_path):
    with pytest.raises(ValueError, match="compile-repeats"):
        compile_scale.main(
            ["--quick", "--compile-repeats", "0", "--out", str(tmp_path)]
        )


def test_fresh_compiles_time_each_compilation_in_a_new_process():
    row = compile_scale.measure(
        "dynopt_tree", 2, 4, "sgd", 2, 1, compile_repeats=1, fresh=True
    )
    assert len(row["compile_s_all"]) == 1 and row["compile_s"] > 0
    assert row["hlo_instructions"] > 0


def test_the_constants_program_compiles_the_hyperparameters_in():
    # same update, hyperparameters as compiled-in constants: the same numbers,
    # and the kernels no longer read them from the state
    def run(name):
        fn, args, _ = compile_scale._program(name, 3, 8, "momentum", 2)
        text = fn.lower(*args).compile().as_text()
        params, state = fn(*args)
        return text, params, state

    text, params, state = run("dynopt_tree_const")
    ref_text, ref_params, ref_state = run("dynopt_tree")
    for a, b in zip(params, ref_params):
        np.testing.assert_array_equal(a, b)
    assert state.hyperparams.keys() == ref_state.hyperparams.keys()
    assert "constant(0.9)" in text and "constant(0.9)" not in ref_text
    assert " reduce(" not in text and " reduce(" in ref_text


def test_fresh_compiles_run_in_rounds_with_paired_ratios(tmp_path):
    metrics = compile_scale.main(
        ["--quick", "--leaves", "2", "--params", "1e3", "--optimizer", "sgd"]
        + ["--contenders", "optax_tree,dynopt_tree,dynopt_tree_const"]
        + ["--fresh-compiles", "--compile-repeats", "2", "--out", str(tmp_path)]
    )
    rows = metrics["compile_vs_optax"]
    assert {r["contender"] for r in rows} == {"dynopt_tree", "dynopt_tree_const"}
    assert len(rows) == 4  # two contenders x (leaf sweep, parameter sweep)
    for r in rows:
        assert r["rounds"] == 2
        assert 0 < r["ratio_min"] <= r["ratio_median"] <= r["ratio_max"]
