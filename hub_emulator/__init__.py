"""A loopback, protocol-faithful Hugging Face Hub emulator for tests and local development.

The real Hub is unreachable from the machines this project runs on, yet the pipeline must exercise the genuine
``huggingface_hub`` client (create_repo, preupload, LFS upload, commit, tags, downloads).  This package serves the
subset of the Hub's HTTP API that client speaks (see ``docs/hub-protocol.md`` in the shared docs) from plain files on
disk, using only the standard library.  The pipeline never imports it; tests and ``python -m hub_emulator`` do.
"""

from __future__ import annotations

from hub_emulator.server import HubServer
from hub_emulator.storage import HubStorage, ensure_token

__all__ = ["HubServer", "HubStorage", "ensure_token"]
