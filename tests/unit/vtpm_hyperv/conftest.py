# SPDX-License-Identifier: Apache-2.0
"""The simulated Hyper-V fixtures (``tests.fixtures.hyperv``) for the tests
of ``vtpm_hyperv``."""

from tests.fixtures.hyperv import conf  # noqa: F401
from tests.fixtures.hyperv import conformance  # noqa: F401
from tests.fixtures.hyperv import fabric  # noqa: F401
from tests.fixtures.hyperv import guardians  # noqa: F401
from tests.fixtures.hyperv import host  # noqa: F401
from tests.fixtures.hyperv import hv  # noqa: F401
from tests.fixtures.hyperv import keys  # noqa: F401
from tests.fixtures.hyperv import local_host  # noqa: F401
from tests.fixtures.hyperv import local_hv  # noqa: F401
from tests.fixtures.hyperv import make_backend  # noqa: F401
from tests.fixtures.hyperv import other_fabric  # noqa: F401
from tests.fixtures.hyperv import simulator  # noqa: F401
