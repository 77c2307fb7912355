# SPDX-License-Identifier: Apache-2.0
"""The documented notification samples (doc/notification_samples/) and the
check of a captured notification against one.

A sample is a notification as a test captured it (nova's
``FakeVersionedNotifier``: ``event_type``, ``priority``, ``publisher_id``,
``payload``), with each value that changes from run to run written as a
fixed placeholder. ``check`` puts this run's values in their place and
compares the whole notification, so those values are checked too.
``VTPM_WRITE_SAMPLES=1`` writes the samples from the run instead; review
the diff.
"""

import hashlib
import json
import os
import pathlib

SAMPLES = pathlib.Path(__file__).resolve().parents[1] / 'doc' / \
    'notification_samples'

# what stands in a sample for a value of this run
INSTANCE_UUID = '178b0921-8f85-4257-88b6-2e743b5a975c'
SECRET_REF = 'b7e6f1c3-2a4d-4e5f-8a9b-0c1d2e3f4a5b'


def fabric_id(name):
    """The placeholder for the identity of fabric ``name``."""
    return hashlib.sha256(name.encode()).hexdigest()


def check(name, notification, volatile):
    """Assert ``notification`` is sample ``name`` once each placeholder in
    ``volatile`` ({placeholder: this run's value}) is replaced."""
    path = SAMPLES / ('%s.json' % name)
    if os.environ.get('VTPM_WRITE_SAMPLES'):
        text = json.dumps(notification, indent=4, sort_keys=True)
        for placeholder, value in volatile.items():
            text = text.replace(value, placeholder)
        path.write_text(text + '\n')
    text = path.read_text()
    for placeholder, value in volatile.items():
        if placeholder not in text:
            raise AssertionError('%s lacks %s' % (path, placeholder))
        text = text.replace(placeholder, value)
    documented = json.loads(text)
    if documented != notification:
        raise AssertionError('%s differs from the notification sent:\n%s' % (
            path, json.dumps(notification, indent=4, sort_keys=True)))
