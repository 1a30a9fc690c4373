"""``python -m chaos``: see chaos.driver and docs/chaos.md."""

import sys

from chaos.driver import main

sys.exit(main())
