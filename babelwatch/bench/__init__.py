"""Benchmarks (``babelwatch bench ...``): measured against the local stack, never against mocks."""
