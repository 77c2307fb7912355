# SPDX-License-Identifier: Apache-2.0
"""The key source fixtures (``tests.fixtures.barbican``), with the real
Keystone and Barbican."""

from tests.fixtures.barbican import conf  # noqa: F401
from tests.fixtures.barbican import expired_owner_token  # noqa: F401
from tests.fixtures.barbican import services  # noqa: F401
from tests.fixtures.barbican import source  # noqa: F401
from tests.fixtures.barbican import store  # noqa: F401
from tests.fixtures.barbican import stub  # noqa: F401
from tests.fixtures.barbican import wiped  # noqa: F401
