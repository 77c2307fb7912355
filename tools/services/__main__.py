# SPDX-License-Identifier: Apache-2.0
"""``python3 -m tools.services {start|stop|env} [STATE_DIR]``."""

import sys

from tools.services import cli

sys.exit(cli.main())
