"""Console entry point ``multimodal-sched`` (filled in by the scheduler issue)."""
import sys


def main(argv=None) -> int:
    print("multimodal-sched: not implemented yet", file=sys.stderr)
    return 2
