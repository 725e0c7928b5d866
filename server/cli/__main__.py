"""`python -m gradscope.server.cli`: the same as the `gradscope` command."""

import sys

from gradscope.server.cli import main

sys.exit(main())
