"""End-to-end tests: `nvr run` (the appliance on the simulated board, what `make run`
starts) driven over HTTP and in a real Chromium."""

from tests.integration import conftest as integration

small_clip = integration.small_clip        # fixtures shared with the integration tests
camera_server = integration.camera_server
