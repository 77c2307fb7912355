# SPDX-License-Identifier: Apache-2.0
"""Command lines for operators: ``vtpm-check``.

Built on ``vtpm_core``; the one part that talks to a cloud
(``vtpm_cli.cloud``, openstacksdk) is imported only for ``--audit`` and
needs the ``audit`` extra.
"""
