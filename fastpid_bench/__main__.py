"""``python -m fastpid_bench``: same as the ``fastpid-bench`` console script."""
import sys

from .cli import main

sys.exit(main())
