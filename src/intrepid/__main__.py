"""``python -m intrepid`` runs the command line."""

import sys

from intrepid.cli import main

sys.exit(main())
