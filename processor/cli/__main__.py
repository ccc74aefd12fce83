"""`python -m processor.cli` is the `badgateway` command."""

import sys

from processor.cli.main import main

sys.exit(main())
