"""python -m audit: every check, one table; exit 1 on any breach."""

import sys

from audit.runner import main

sys.exit(main())
