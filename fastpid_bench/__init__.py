"""fastpid_bench: every PID solver side by side against the conic reference.

Run ``fastpid-bench --help`` (or ``python -m fastpid_bench``).  Modules:
:mod:`.cli` (options), :mod:`.problems` (gates / Gaussian histograms from
samples), :mod:`.runner` (timing, solving, MAE reference), :mod:`.suites` (the
benchmarks), :mod:`.report` (tables, CSV/JSON, plots).  Uses only the public
``fastpid`` API.
"""
__all__ = ["main"]


def main(argv=None) -> int:
    from .cli import main as _main

    return _main(argv)
