# SPDX-License-Identifier: Apache-2.0
"""Shielding data files of the size Windows lets a tenant make them."""

import pytest

from vtpm_hyperv import fake
from vtpm_hyperv.fake import crypto
from vtpm_hyperv.fake import provisioning


@pytest.fixture(scope='module')
def parties():
    return (fake.make_guardian('owner'), fake.make_guardian('fabric'),
            fake.make_guardian('stranger'))


def test_the_other_files_reach_new_shieldingdatafiles_limit(parties):
    """-OtherFile is "limited to 384KB" (New-ShieldingDataFile.md): the
    files reach it, and the PDK holds them and the answer file."""
    answer_file, other_files = provisioning.provisioning_files()
    total = sum(len(c) for c in other_files.values())
    assert crypto.OTHER_FILES_LIMIT - 2048 < total <= \
        crypto.OTHER_FILES_LIMIT == 384 * 1024
    assert answer_file.startswith(b'<?xml') and b'<unattend' in answer_file
    owner, fabric, _ = parties
    pdk = provisioning.shielding_data_file(owner, [fabric.public()])
    assert total + len(answer_file) < len(pdk) < 512 * 1024


def test_its_files_open_for_the_parties_of_its_keyprotector_alone(parties):
    """Encrypted until provisioning: the fabric's key opens them, another
    does not; what opens is what the tenant put in."""
    owner, fabric, stranger = parties
    pdk = provisioning.shielding_data_file(owner, [fabric.public()])
    answer_file, other_files = crypto.open_provisioning_files(
        pdk, fabric.encryption_key)
    assert (answer_file, other_files) == provisioning.provisioning_files()
    with pytest.raises(crypto.UnwrapError):
        crypto.open_provisioning_files(pdk, stranger.encryption_key)


def test_new_shieldingdatafile_refuses_other_files_over_its_limit(parties):
    owner, fabric, _ = parties
    with pytest.raises(ValueError) as e:
        crypto.make_shielding_data_file(owner, [fabric.public()], other_files={
            'big.bin': bytes(crypto.OTHER_FILES_LIMIT + 1)})
    assert 'at most 393216' in str(e.value)


def test_a_host_reads_its_keyprotector_and_policy(parties, tmp_path):
    """PopulateFromFile (Msps_PDK) reads the clear parts of the large file
    as of a small one."""
    owner, fabric, _ = parties
    pdk = provisioning.shielding_data_file(owner, [fabric.public()])
    kp, policy, raw = crypto.read_shielding_data_file(pdk)
    assert fake.parse_key_protector(kp).owner.signing_der == \
        owner.signing_der
    assert b'Shielded' in policy
    assert len(raw) > crypto.OTHER_FILES_LIMIT
