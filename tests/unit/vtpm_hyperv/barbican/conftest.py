# SPDX-License-Identifier: Apache-2.0
"""The key source fixtures (``tests.fixtures.barbican``)."""

from tests.fixtures.barbican import conf  # noqa: F401
from tests.fixtures.barbican import source  # noqa: F401
from tests.fixtures.barbican import stub  # noqa: F401
from tests.fixtures.barbican import wiped  # noqa: F401
