"""`python -m heavylab` is `heavy-lab`."""

import sys

from heavylab.cli import main

sys.exit(main())
