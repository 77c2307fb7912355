# SPDX-License-Identifier: Apache-2.0
"""The os:vtpm validator, as nova-api loads and calls it."""

from importlib import metadata

from nova.api.validation.extra_specs import validators as nova_validators
from nova import exception as nova_exception
import pytest

from vtpm_core import constants
from vtpm_filters import validators


def test_register_returns_the_os_vtpm_validator():
    (validator,) = validators.register()
    assert validator.name == 'os:vtpm'
    assert validator.value['enum'] == ['disabled', 'optional', 'required']


def test_nova_loaded_it_through_the_entry_point():
    entry_points = {ep.name: ep.value for ep in metadata.entry_points(
        group='nova.api.extra_spec_validators')}
    assert entry_points['vtpm'] == 'vtpm_filters.validators'
    # nova's registry holds our object: nothing was patched in
    assert nova_validators.VALIDATORS['os:vtpm'] is \
        validators.EXTRA_SPEC_VALIDATORS[0]


@pytest.mark.parametrize('value', constants.VTPM_POLICIES)
def test_allowed_values_pass(value):
    nova_validators.validate('os:vtpm', value)


@pytest.mark.parametrize('value', [
    'bogus',       # not a policy
    'Required',    # matched exactly, lowercase
    ' required',   # no trimming
    '',            # empty
    'true',        # not a boolean
])
def test_other_values_are_refused_naming_key_value_and_allowed(value):
    with pytest.raises(nova_exception.ValidationError) as caught:
        nova_validators.validate('os:vtpm', value)
    assert str(caught.value) == (
        "Validation failed; os:vtpm (flavor extra spec) is %r; allowed: "
        "disabled, optional, required" % value)


def test_neighbouring_os_names_stay_unknown():
    # Our validator names one key; nova still refuses typos in the namespace.
    with pytest.raises(nova_exception.ValidationError) as caught:
        nova_validators.validate('os:vtpm_keys', 'required')
    assert 'does not appear to be a valid extra spec' in str(caught.value)
