"""Test doubles (fake upstream servers) shared by the test suite and the benchmarks."""
