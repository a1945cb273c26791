"""Benchmarks: one script per question, each with ``main(argv=None) -> dict``."""
