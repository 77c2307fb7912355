# SPDX-License-Identifier: Apache-2.0
"""Key material from Barbican: the key source (``key_source``), the HTTP
rules beneath it (``http_guard``) and its ``[vtpm_key_manager]`` options."""
