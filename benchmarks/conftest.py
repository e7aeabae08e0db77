"""Markers of the solver benchmarks (run with ``python -m pytest benchmarks --benchmark-enable``)."""


def pytest_configure(config):
    config.addinivalue_line("markers", "optional: larger optional sizes (deselect with -m 'not optional')")
