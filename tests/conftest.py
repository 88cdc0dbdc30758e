"""Shared pytest set-up: offline settings first, then the fixture modules of each area.

Fixtures live in small modules named for what they provide (data, model, server) so that the
areas of the project can grow their fixtures without editing one shared file.
"""
import os

os.environ.setdefault("TIGER_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".cache"))

import tiger  # noqa: E402,F401  (offline settings before any third-party import)

pytest_plugins = ["tests.fixtures_data", "tests.fixtures_model", "tests.fixtures_server", "tests.fixtures_turing"]
