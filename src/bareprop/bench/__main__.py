"""``python -m bareprop.bench`` == ``bareprop bench`` (and, with the hidden ``--worker``,
one row of it in this process: kit.run_task starts these)."""
import sys

from .command import main

sys.exit(main())
