"""Console entry point ``fastpid-bench`` (filled in by the bench issue)."""
import sys


def main(argv=None) -> int:
    print("fastpid-bench: not implemented yet", file=sys.stderr)
    return 2
