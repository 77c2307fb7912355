# SPDX-License-Identifier: Apache-2.0
"""The audit's reader of nova's databases, over real nova databases.

nova's own test case gives them: an API database and two cell databases
(sqlite files, nova's migrations), with their cell mappings; the instances
are written by nova's ``Instance.create``, as nova-conductor writes them.
"""

import fixtures
from nova import context as nova_context
from nova import objects
from nova import test as nova_test
from oslo_utils.fixture import uuidsentinel as uuids

from vtpm_cli import audit
from vtpm_cli import novadb
from vtpm_core import constants

FABRIC = 'c3' * 32
K1 = '8f14e45f-ceea-467a-9575-7a6c8c2b3a11'
K2 = '45c48cce-2e2d-4fbd-a7b0-9ea0e5e4a1b2'
# what nova copies from an image into every instance's system metadata
IMAGE_SYSMETA = {'image_base_image_ref': uuids.image, 'image_min_ram': '0',
                 'image_min_disk': '1', 'image_disk_format': 'raw',
                 'image_container_format': 'bare',
                 'image_hw_machine_type': 'hyperv-gen2',
                 'image_os_vtpm': 'required', 'owner_user_name': 'alice',
                 'owner_project_name': 'web'}


class TestReader(nova_test.TestCase):
    NUMBER_OF_CELLS = 2

    def _clear_attrs(self):
        # nova's clean-up deletes every public attribute; pytest deletes
        # the test method's own afterwards (tests/functional/conftest.py)
        self.__dict__.pop(self._testMethodName, None)
        super()._clear_attrs()
        self.__dict__[self._testMethodName] = getattr(
            type(self), self._testMethodName)

    def setUp(self):
        super().setUp()
        self.context = nova_context.get_admin_context()
        self.expected = {}
        self.pages = []
        real = novadb._read_page

        def counted(context, after, limit):
            rows = real(context, after, limit)
            # the instances a page read
            self.pages.append((context.cell_uuid, len({r[0] for r in rows})))
            return rows
        self.useFixture(self._patch(novadb, '_read_page', counted))
        # the reader loads no instance as a nova object
        self.useFixture(self._patch(
            objects.InstanceList, 'get_by_filters', self._no_objects))

    @staticmethod
    def _patch(owner, name, value):
        return fixtures.MockPatchObject(owner, name, value)

    @staticmethod
    def _no_objects(*args, **kwargs):
        raise AssertionError('the reader loaded instances as nova objects')

    def create(self, cell, name, deleted=False, **ours):
        """An instance as nova writes it, with our keys ``ours``."""
        uuid = getattr(uuids, name)
        with nova_context.target_cell(
                self.context, self.cell_mappings[cell]) as cctxt:
            instance = objects.Instance(
                context=cctxt, uuid=uuid, display_name=name,
                project_id='p-' + cell, user_id='u', host='hv-' + cell,
                image_ref=uuids.image,
                system_metadata=dict(IMAGE_SYSMETA, **ours))
            instance.create()
            if deleted:
                instance.destroy()
        return uuid

    def expect(self, cell, name, **ours):
        uuid = self.create(cell, name, **ours)
        self.expected[uuid] = audit.Instance(
            uuid, name, 'p-' + cell, 'hv-' + cell, uuids.image, ours)

    def test_pages_read_only_our_keys_of_live_instances_in_every_cell(self):
        keys = {constants.SYSMETA_FABRICS: FABRIC,
                constants.SYSMETA_KEYS: '%s,%s' % (K1, K2)}
        for n in range(3):
            self.expect('cell1', 'keyed-%d' % n, **keys)
        self.expect('cell2', 'keyed-c2', **keys)
        # recorded before vtpm_keys existed: fabrics only
        self.expect('cell2', 'fabrics-only',
                    **{constants.SYSMETA_FABRICS: FABRIC})
        # the image and its secrets may be gone: the records stand
        self.expect('cell2', 'keys-only', **{constants.SYSMETA_KEYS: K1})
        self.create('cell1', 'deleted', deleted=True, **keys)
        self.create('cell1', 'no-vtpm')
        # a local key protector: no fabric, no secret
        self.create('cell2', 'local', **{constants.SYSMETA_FABRICS: ''})
        # ... whose VM a restarted compute found without it: read
        self.expect('cell2', 'marked', **{
            constants.SYSMETA_FABRICS: '',
            constants.SYSMETA_MISSING: 'its TPM off'})

        found = novadb.instances(self.context, page_instances=2)

        self.assertEqual(self.expected, {i.id: i for i in found})
        # pages of 2 instances, deleted ones counted (cell1: 3 keyed, the
        # deleted one and one without a vTPM; cell2: 5), then a short
        # one: one query per page per cell
        by_cell = {}
        for cell, instances in self.pages:
            by_cell.setdefault(cell, []).append(instances)
        self.assertEqual({uuids.cell1: [2, 2, 1], uuids.cell2: [2, 2, 1]},
                         by_cell)

    def test_an_unreadable_cell_is_an_error(self):
        from vtpm_cli import exception as cli_exception

        def failing(context, after, limit):
            raise RuntimeError('database is locked')
        self.useFixture(self._patch(novadb, '_read_page', failing))
        error = self.assertRaises(cli_exception.NovaUnreadable,
                                  novadb.instances, self.context)
        self.assertIn('RuntimeError: database is locked', str(error))

    def test_an_instance_whose_row_is_deleted_is_not_read(self):
        """Whatever its system metadata rows say: nova's soft delete marks
        the instance's own row."""
        from nova.db.main import api as db_api
        from nova.db.main import models

        keys = {constants.SYSMETA_FABRICS: FABRIC, constants.SYSMETA_KEYS: K1}
        self.expect('cell1', 'live', **keys)
        gone = self.create('cell1', 'gone', **keys)
        with nova_context.target_cell(
                self.context, self.cell_mappings['cell1']) as cctxt:
            with db_api.get_context_manager(cctxt).writer.using(cctxt) as s:
                row = s.query(models.Instance).filter_by(uuid=gone).one()
                row.deleted = row.id
        self.assertEqual(self.expected,
                         {i.id: i for i in novadb.instances(self.context)})
