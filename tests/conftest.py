"""Test-wide settings: UTC and the C locale, so results never depend on the machine."""

import os
import time

os.environ["TZ"] = "UTC"
os.environ["LC_ALL"] = "C"
time.tzset()


import pytest  # noqa: E402  (after the environment is fixed)


@pytest.fixture
def index(tmp_path):
    """An empty recording index (real SQLite) in the test's directory; a test module may
    define its own `index` with content instead."""
    from appliance.recorder.index import RecordingIndex

    idx = RecordingIndex(tmp_path)
    yield idx
    idx.close()


@pytest.fixture(autouse=True)
def restore_root_logging():
    """A command's main() run in-process (setup_logging, basicConfig) points the root
    logger at this test's captured stderr, which pytest closes afterwards; put the root
    logger back so later tests in the same worker do not log into a closed file."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
