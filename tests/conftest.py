"""Test-wide settings: UTC and the C locale, so results never depend on the machine."""

import os
import time

os.environ["TZ"] = "UTC"
os.environ["LC_ALL"] = "C"
time.tzset()
