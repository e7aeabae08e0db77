"""``python -m multimodal_sched`` = the ``multimodal-sched`` command."""
import sys

from .cli import main

sys.exit(main())
