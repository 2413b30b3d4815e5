"""The owner's fleet guide (docs/guide/) against the code, so it cannot drift: every
metric, label and label value its Grafana dashboard and alert rules use is one a scrape
of a whole simulated box (conftest.py's `box`) exports, the files have the shape Grafana
and Prometheus load, and the API paths and MQTT settings the guide shows exist. With
promtool (Debian's `prometheus` package): the rules load, every dashboard query returns
data from that scrape, and each alert fires on the box state it is written for and on
no other."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from appliance.metrics.access import check_networks
from appliance.mqtt.settings import load_settings

ROOT = Path(__file__).resolve().parents[3]
GUIDE = ROOT / "docs" / "guide"
DASHBOARD = GUIDE / "grafana-vigil.json"
ALERT_RULES = GUIDE / "vigil-alerts.yml"
FLEET = GUIDE / "fleet.md"
OPENAPI = ROOT / "docs" / "api" / "openapi.yaml"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="no promtool (Debian package "
                                    "`prometheus`: apt-get install prometheus)")

DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
TARGET_LABELS = {"instance", "job"}        # Prometheus adds them to every scraped series
BOX_FILTER = 'instance=~"$box"'
SEVERITIES = {"critical", "warning"}
# Parts of the box whose metrics the guide must show (docs/design/metrics.md's families).
PARTS = ("vigil_camera_", "vigil_storage_", "vigil_disk_", "vigil_raid_", "vigil_poe_",
         "vigil_licence_", "vigil_recorder_")
# Panels that show a problem only when there is one: no data from a healthy box.
EMPTY_WHEN_HEALTHY = {"Metric sources down"}

STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
METRIC = re.compile(r"(?<![A-Za-z0-9_:])vigil_[a-z0-9_]+")
SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])(vigil_[a-z0-9_]+)\s*\{([^}]*)\}")
MATCHER = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
LEGEND_LABEL = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
ANNOTATION_LABEL = re.compile(r"\$labels\.([A-Za-z_][A-Za-z0-9_]*)")
LABEL_VALUES = re.compile(r"label_values\(\s*(vigil_[a-z0-9_]+)\s*,\s*([a-z_]+)\s*\)")


# --- what the box exports ---------------------------------------------------------------------

@dataclass
class Exported:
    """Sample names (a counter family `vigil_x` is exposed as `vigil_x_total`), their
    label names, and the label values one scrape of the whole box showed."""
    labels: dict[str, set[str]] = field(default_factory=dict)
    values: dict[tuple[str, str], set[str]] = field(default_factory=dict)


def exported(samples: dict[tuple, float]) -> Exported:
    """From `Box.scrape()`: the text format parsed back, so names are sample names."""
    found = Exported()
    for name, labels in samples:
        found.labels.setdefault(name, set()).update(k for k, _ in labels)
        for key, value in labels:
            found.values.setdefault((name, key), set()).add(value)
    return found


# --- what the guide uses ----------------------------------------------------------------------

@dataclass(frozen=True)
class Query:
    where: str                 # "panel 'Bitrate per camera' A", "rule VigilRaidDegraded"
    expr: str
    texts: tuple[str, ...]     # legend or annotations: the labels they name must exist


def load_dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def load_rules() -> list[dict]:
    return [rule for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
            for rule in group["rules"]]


def panels(dashboard: dict) -> list[dict]:
    """Every panel, those inside collapsed rows included."""
    return [p for top in dashboard["panels"] for p in [top, *top.get("panels", [])]]


def dashboard_queries(dashboard: dict) -> list[Query]:
    return [Query(f"panel {p['title']!r} {t['refId']}", t["expr"], (t.get("legendFormat", ""),))
            for p in panels(dashboard) if p["type"] != "row" for t in p["targets"]]


def rule_queries() -> list[Query]:
    return [Query(f"rule {r['alert']}", r["expr"], tuple(r.get("annotations", {}).values()))
            for r in load_rules()]


def metric_names(expr: str) -> set[str]:
    """The vigil_ identifiers of an expression, string literals (label values) left out."""
    return set(METRIC.findall(STRING.sub('""', expr)))


def known_labels(expr: str, exports: Exported) -> set[str]:
    """The labels the expression's series can carry: their own and the target's."""
    return TARGET_LABELS.union(*(exports.labels.get(n, set()) for n in metric_names(expr)))


# --- drift: names, labels, values -------------------------------------------------------------

def test_every_metric_the_guide_queries_is_exported(box):
    exports = exported(box.scrape())
    dashboard = load_dashboard()
    used: set[str] = set()
    for query in dashboard_queries(dashboard) + rule_queries():
        names = metric_names(query.expr)
        assert names <= set(exports.labels), \
            f"{query.where}: not exported: {sorted(names - set(exports.labels))}"
        used |= names
    for variable in dashboard["templating"]["list"]:
        for metric, label in LABEL_VALUES.findall(json.dumps(variable)):
            assert label in known_labels(metric, exports), variable["name"]
            used.add(metric)
    assert {part for part in PARTS if any(n.startswith(part) for n in used)} == set(PARTS)


def test_label_matchers_name_exported_labels_and_values(box):
    """A renamed label or state (`state="degraded"`) would leave a panel or an alert
    silently empty: every matcher's label exists on its metric, and every literal value
    it asks for (each alternative of a regex) is one the scrape showed."""
    exports = exported(box.scrape())
    checked = 0
    for query in dashboard_queries(load_dashboard()) + rule_queries():
        for metric, matchers in SELECTOR.findall(query.expr):
            for label, op, value in MATCHER.findall(matchers):
                assert label in exports.labels.get(metric, set()) | TARGET_LABELS, \
                    f"{query.where}: {metric} has no label {label}"
                if label in TARGET_LABELS or op not in ("=", "=~") or "$" in value:
                    continue
                wanted = set(value.split("|")) if op == "=~" else {value}
                unseen = wanted - exports.values[(metric, label)]
                assert not unseen, f"{query.where}: {metric}{{{label}}} is never {sorted(unseen)}"
                checked += 1
    assert checked >= 4          # the state, verdict and source matchers of the rules


def test_grouping_legend_and_annotation_labels_exist(box):
    exports = exported(box.scrape())
    for query in dashboard_queries(load_dashboard()) + rule_queries():
        labels = known_labels(query.expr, exports)
        for group in GROUPING.findall(query.expr):
            named = {word.strip() for word in group.split(",") if word.strip()}
            assert named <= labels, f"{query.where}: no such label {sorted(named - labels)}"
        for text in query.texts:
            named = set(LEGEND_LABEL.findall(text)) | set(ANNOTATION_LABEL.findall(text))
            assert named <= labels, f"{query.where}: no such label {sorted(named - labels)}"


# --- the files' shapes ------------------------------------------------------------------------

def test_the_dashboard_imports_with_a_data_source_and_a_box_selector():
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36 and dashboard["uid"] and dashboard["title"]
    assert {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}.items() \
        <= dashboard["__inputs"][0].items()
    [box_variable] = [v for v in dashboard["templating"]["list"] if v["name"] == "box"]
    assert box_variable["datasource"] == DATASOURCE
    assert LABEL_VALUES.search(box_variable["definition"]).group(2) == "instance"
    found = panels(dashboard)
    assert len({p["id"] for p in found}) == len(found)
    for panel in found:
        assert panel["title"].strip(), panel["id"]
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            for metric, matchers in SELECTOR.findall(target["expr"]):
                assert BOX_FILTER in matchers, f"{panel['title']}: {metric} ignores $box"
            every_use = METRIC.findall(STRING.sub('""', target["expr"]))
            assert len(SELECTOR.findall(target["expr"])) == len(every_use), panel["title"]


def test_alert_rules_carry_what_alertmanager_routes_on():
    document = yaml.safe_load(ALERT_RULES.read_text())
    assert document["groups"]
    for group in document["groups"]:
        assert group["name"] and group["rules"], group
    rules = load_rules()
    names = [rule["alert"] for rule in rules]
    assert len(names) == len(set(names))
    for rule in rules:
        assert rule["expr"].strip() and re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in SEVERITIES, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]


def test_the_guide_shows_real_api_paths_and_settings(tmp_path):
    text = FLEET.read_text()
    assert "grafana-vigil.json" in text and "vigil-alerts.yml" in text
    api = set(yaml.safe_load(OPENAPI.read_text())["paths"])
    used = set(re.findall(r"/api/v1/[a-z0-9/_-]*[a-z0-9]", text))
    assert {"/api/v1/login", "/api/v1/metrics/token", "/api/v1/metrics/settings"} <= used
    assert used <= api, sorted(used - api)
    networks = re.search(r"'(\{\"allowed_networks\".*?\})'", text).group(1)
    assert check_networks(json.loads(networks)["allowed_networks"])
    [mqtt_json] = [b for b in re.findall(r"```json\n(.*?)```", text, re.DOTALL) if '"host"' in b]
    (tmp_path / "mqtt.json").write_text(mqtt_json)
    settings = load_settings(tmp_path / "mqtt.json")      # unknown keys or bad values raise
    assert settings.enabled and settings.tls and settings.host


# --- promtool: the rules load, queries return data, alerts fire -------------------------------

@needs_promtool
def test_promtool_accepts_the_alert_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(ALERT_RULES)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


Samples = dict[tuple, float]


def input_series(samples: Samples, minutes: int) -> list[dict]:
    """The scrape as promtool input: each sample a series of box `garage`, constant."""
    series = []
    for (name, labels), value in sorted(samples.items()):
        pairs = dict(labels, instance="garage", job="vigil")
        selector = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(pairs.items()))
        series.append({"series": f"{name}{{{selector}}}", "values": f"{float(value)!r}x{minutes}"})
    return series


def set_sample(samples: Samples, name: str, value: float, **labels: str) -> None:
    """Change a sample the scrape really had (a missing one is drift, not a new series)."""
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, key
    samples[key] = value


IDENTITY = ("alertname", "camera", "device", "array", "source")


def firing(alerts: list[tuple[str, dict]], at: str, by: tuple[str, ...] = IDENTITY) -> dict:
    """A promtool check that exactly these alerts fire at `at`, told apart by `by` (the
    name and the label that says which camera, disk, array or source)."""
    return {"expr": f'group by ({", ".join(by)}) (ALERTS{{alertstate="firing"}})',
            "eval_time": at,
            "exp_samples": [{"labels": "{" + ", ".join(f'{k}="{v}"' for k, v in
                                                       {"alertname": name, **labels}.items()) + "}",
                             "value": 1} for name, labels in alerts]}


def promtool_test(tmp_path: Path, rules: list[dict], tests: list[dict]) -> None:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": [
        {"name": "under-test", "rules": rules}]}))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m", "tests": tests}))
    result = subprocess.run([PROMTOOL, "test", "rules", "test.yml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def healthy_disk_space(samples: Samples) -> None:
    """The fixture's volume is this machine's disk: its free space is made explicit."""
    set_sample(samples, "vigil_storage_size_bytes", 4e12)
    set_sample(samples, "vigil_storage_low_water_bytes", 2e11)
    set_sample(samples, "vigil_storage_free_bytes", 2.5e11)


@needs_promtool
def test_every_dashboard_query_returns_data_from_a_scraped_box(box, tmp_path):
    """Each panel query becomes an alert (it fires when the query returns anything), over
    an hour of the scrape (rate and increase need the range): all fire but the panels
    that show a problem only when there is one."""
    queries = {}
    for panel in panels(load_dashboard()):
        for target in panel.get("targets", []) if panel["type"] != "row" else []:
            queries[f"panel_{panel['id']}_{target['refId']}"] = (
                panel["title"], target["expr"].replace("$box", ".*"))
    rules = [{"alert": name, "expr": expr} for name, (_, expr) in queries.items()]
    expected = [(name, {}) for name, (title, _) in queries.items()
                if title not in EMPTY_WHEN_HEALTHY]
    assert len(expected) < len(queries)
    promtool_test(tmp_path, rules, [{
        "interval": "1m", "input_series": input_series(box.scrape(), 60),
        "promql_expr_test": [firing(expected, "60m", by=("alertname",))]}])


@needs_promtool
def test_each_alert_fires_on_the_box_state_it_is_written_for(box, tmp_path):
    """The scrape as it is: yard's status went stale (not recording) and /dev/sdb fails
    SMART; md0 rebuilding is not an alert. Then the same box with everything broken:
    every alert fires, except for yard, now outside its schedule (off on purpose)."""
    as_scraped = box.scrape()
    healthy_disk_space(as_scraped)
    up = {("up", ()): 1.0}
    broken = dict(as_scraped)
    set_sample(broken, "vigil_camera_recording", 0, camera="door")
    set_sample(broken, "vigil_camera_state", 0, camera="yard", state="recording")
    set_sample(broken, "vigil_camera_state", 1, camera="yard", state="outside_schedule")
    set_sample(broken, "vigil_storage_volume_usable", 0)
    set_sample(broken, "vigil_storage_free_bytes", 5e10)
    set_sample(broken, "vigil_disk_smart_verdict", 0, device="/dev/sda", verdict="healthy")
    set_sample(broken, "vigil_disk_smart_verdict", 1, device="/dev/sda", verdict="warning")
    set_sample(broken, "vigil_raid_state", 0, array="md0", state="rebuilding")
    set_sample(broken, "vigil_raid_state", 1, array="md0", state="degraded")
    set_sample(broken, "vigil_metrics_source_up", 0, source="recorder_process")
    set_sample(broken, "vigil_metrics_source_up", 0, source="disks")
    smart_critical = ("VigilDiskSmartCritical", {"device": "/dev/sdb"})
    yard = ("VigilCameraNotRecording", {"camera": "yard"})
    promtool_test(tmp_path, load_rules(), [
        {"interval": "1m", "input_series": input_series(as_scraped | up, 30),
         "promql_expr_test": [firing([smart_critical], "4m"),          # `for: 5m` not yet
                              firing([smart_critical, yard], "10m")]},
        {"interval": "1m", "input_series": input_series(broken | {("up", ()): 0.0}, 30),
         "promql_expr_test": [firing([
             ("VigilCameraNotRecording", {"camera": "door"}),
             ("VigilDataVolumeUnusable", {}), ("VigilFreeSpaceLow", {}), smart_critical,
             ("VigilDiskSmartWarning", {"device": "/dev/sda"}),
             ("VigilRaidDegraded", {"array": "md0"}),
             ("VigilRecorderDown", {"source": "recorder_process"}),
             ("VigilMonitoringSourceDown", {"source": "disks"}),
             ("VigilBoxDown", {})], "20m")]},
    ])
