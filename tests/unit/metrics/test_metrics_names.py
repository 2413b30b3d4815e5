"""Metric names follow Prometheus's conventions (prometheus.io/docs/practices/naming):
the `vigil_` prefix, snake case, base units in the name, counters ending in `_total`;
and both exposition formats parse back with prometheus_client's own parsers (OpenMetrics
being the strict one: units, counter suffixes, `# EOF`)."""

from __future__ import annotations

import re

from prometheus_client.openmetrics.parser import \
    text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from appliance.metrics.collector import build_registry, exposition

NAME = re.compile(r"^vigil_[a-z0-9_]+$")
# Quantities that have a base unit must name it; these words say the quantity is one.
UNIT_WORDS = {"seconds": ("age", "time", "duration", "forecast", "remaining", "retained"),
              "bytes": ("memory", "size", "free", "deleted", "received")}
BASE_UNITS = ("_seconds", "_bytes", "_watts", "_volts", "_celsius", "_ratio",
              "_bits_per_second", "_timestamp_seconds")
NOT_BASE_UNITS = ("_days", "_hours", "_minutes", "_milliseconds", "_kib", "_mib", "_gib",
                  "_kb", "_mb", "_gb", "_percent", "_kbps", "_mbps", "_mw", "_fahrenheit")


def families(box):
    return list(build_registry(box.sources).collect())


def test_every_family_is_named_by_the_conventions(box):
    found = families(box)
    assert len(found) >= 40
    for family in found:
        assert NAME.match(family.name), family.name
        assert not family.name.endswith(NOT_BASE_UNITS), f"{family.name}: use base units"
        if family.unit:
            assert family.name.endswith("_" + family.unit), family.name
        for unit, words in UNIT_WORDS.items():
            if any(f"_{word}" in family.name for word in words):
                assert family.name.endswith(BASE_UNITS), \
                    f"{family.name} is a {unit} quantity without its unit"


def test_counters_end_in_total_and_nothing_else_does(box):
    counters = 0
    for family in families(box):
        for sample in family.samples:
            if family.type == "counter":
                assert sample.name.endswith("_total"), sample.name
            else:
                assert not sample.name.endswith("_total"), f"{sample.name} is a {family.type}"
        counters += family.type == "counter"
    assert counters >= 5


def test_every_source_exports_something_and_families_are_unique(box):
    found = families(box)
    names = [f.name for f in found]
    assert len(names) == len(set(names))
    prefixes = {"vigil_camera_", "vigil_storage_", "vigil_disk_", "vigil_raid_", "vigil_poe_",
                "vigil_licence_", "vigil_recorder_", "vigil_update_", "vigil_metrics_"}
    with_samples = {f.name for f in found if f.samples}
    assert {p for p in prefixes if any(n.startswith(p) for n in with_samples)} == prefixes


def test_both_exposition_formats_parse(box):
    registry = build_registry(box.sources)
    text, text_type = exposition(registry, "text/plain;version=0.0.4")
    assert text_type.startswith("text/plain; version=0.0.4")
    openmetrics, om_type = exposition(
        registry, "application/openmetrics-text;version=1.0.0,text/plain;q=0.5")
    assert om_type.startswith("application/openmetrics-text; version=1.0.0")
    assert openmetrics.endswith(b"# EOF\n")
    text_names = {s.name for f in parse_text(text.decode()) for s in f.samples}
    om_names = {s.name for f in parse_openmetrics(openmetrics.decode()) for s in f.samples}
    assert text_names == om_names and "vigil_camera_reconnects_total" in om_names
