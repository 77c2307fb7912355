# SPDX-License-Identifier: Apache-2.0
"""pytest glue for nova's in-process services (``tools.simcloud.nova``)."""

from nova import test
import pytest


def _clear_attrs(self):
    # nova deletes every public attribute at cleanup; pytest (>= 8) sets the
    # test method's name as one and deletes it afterwards itself.
    keep = {'id', getattr(self, '_testMethodName', None)}
    for key in [k for k in self.__dict__ if k[0] != '_' and k not in keep]:
        del self.__dict__[key]


@pytest.fixture(autouse=True, scope='session')
def nova_test_cases_under_pytest():
    """nova.test.TestCase's clean-up as pytest needs it, for the session."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(test.TestCase, '_clear_attrs', _clear_attrs)
        yield
