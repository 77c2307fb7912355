# SPDX-License-Identifier: Apache-2.0
"""pytest glue for nova's in-process services.

pytest imports this before any test module, so nova is first imported here,
after the environment that decides eventlet or native threads is set.
"""

import os

os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', '1')

from . import nova_harness  # noqa: E402,F401  (shims applied on import)
