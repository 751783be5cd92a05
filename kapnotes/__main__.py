"""``python -m kapnotes``: the operators' command line."""

import sys

from kapnotes.cli import main

sys.exit(main())
