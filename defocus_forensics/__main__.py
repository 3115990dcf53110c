"""``python -m defocus_forensics`` runs the ``defocus`` command."""

import sys

from defocus_forensics.cli import main

sys.exit(main())
