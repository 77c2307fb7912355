# SPDX-License-Identifier: Apache-2.0
"""The extra-spec validators, as nova-api loads and calls them."""

from importlib import metadata

from nova.api.validation.extra_specs import hw as nova_hw
from nova.api.validation.extra_specs import validators as nova_validators
from nova import exception as nova_exception
import pytest

from vtpm_core import constants
from vtpm_filters import validators

NOVA_KEYS = ('hw:tpm_version', 'hw:tpm_model', 'hw:tpm_secret_security')


def test_register_returns_os_vtpm_and_novas_tpm_keys():
    registered = validators.register()
    assert [v.name for v in registered] == ['os:vtpm'] + list(NOVA_KEYS)
    assert registered[0].value['enum'] == ['disabled', 'optional',
                                           'required']
    assert [v.value['enum'] for v in registered[1:]] == [
        ['2.0'], ['tpm-crb'], ['user', 'host']]


@pytest.mark.parametrize('ours_first', [True, False],
                         ids=['ours loaded first', 'nova\'s loaded first'])
def test_ours_win_whichever_order_nova_loads_the_plugins_in(ours_first):
    """nova keeps the last validator registered under a name, and loads
    plugins in the order their distributions are found on disk."""
    registry = {}
    plugins = [validators.register, nova_hw.register]
    for register in plugins if ours_first else reversed(plugins):
        for validator in register():
            registry[validator.name] = validator
    for name in NOVA_KEYS:
        assert registry[name] in validators.NOVA_TPM_VALIDATORS


def test_nova_loaded_it_through_the_entry_point():
    entry_points = {ep.name: ep.value for ep in metadata.entry_points(
        group='nova.api.extra_spec_validators')}
    assert entry_points['vtpm'] == 'vtpm_filters.validators'
    # nova's registry holds our objects
    assert nova_validators.VALIDATORS['os:vtpm'] is \
        validators.EXTRA_SPEC_VALIDATORS[0]
    for validator in validators.NOVA_TPM_VALIDATORS:
        assert nova_validators.VALIDATORS[validator.name] is validator


# (key, a value Hyper-V gives, a value nova knows that Hyper-V is not, what
# the refusal says)
NOVA_VALUES = [
    ('hw:tpm_version', '2.0', '1.2',
     "hw:tpm_version (flavor extra spec) is '1.2' but Hyper-V's virtual TPM "
     'is a TPM 2.0 and offers no TPM 1.2; allowed: 2.0'),
    ('hw:tpm_model', 'tpm-crb', 'tpm-tis',
     "hw:tpm_model (flavor extra spec) is 'tpm-tis' but Hyper-V's virtual "
     'TPM has a CRB interface, not TIS; allowed: tpm-crb'),
    ('hw:tpm_secret_security', 'host', 'deployment',
     "hw:tpm_secret_security (flavor extra spec) is 'deployment' but no "
     "vTPM here is sealed for nova's service user"),
]


@pytest.mark.parametrize('key,good,bad,message', NOVA_VALUES,
                         ids=[v[0] for v in NOVA_VALUES])
def test_novas_tpm_keys_are_held_to_hyperv(key, good, bad, message):
    nova_validators.validate(key, good)
    with pytest.raises(nova_exception.ValidationError) as caught:
        nova_validators.validate(key, bad)
    assert str(caught.value).startswith('Validation failed; ' + message)
    with pytest.raises(nova_exception.ValidationError) as caught:
        nova_validators.validate(key, 'bogus')
    assert "(flavor extra spec) is 'bogus'" in str(caught.value)


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
