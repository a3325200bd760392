"""``python -m bareprop`` == the ``bareprop`` command."""
import sys

from .cli.main import main

sys.exit(main())
