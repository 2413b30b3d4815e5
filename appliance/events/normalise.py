"""Camera topics -> a small set of event kinds the timeline and alerts understand.

Makers name the same thing differently (VideoSource/MotionAlarm on one camera,
RuleEngine/CellMotionDetector/Motion on the next) and add their own topics. The owner
sees six kinds; the camera's own topic is always kept raw beside the kind, so nothing is
lost for a topic this table does not know (it becomes "other").
"""

from __future__ import annotations

MOTION = "motion"
TAMPER = "tamper"
LINE_CROSSING = "line_crossing"
INTRUSION = "intrusion"
INPUT = "input"
OTHER = "other"
KINDS = (MOTION, TAMPER, LINE_CROSSING, INTRUSION, INPUT, OTHER)

# Topic path (prefixes removed, compared case-insensitively) -> kind. A rule matches the
# path itself and everything below it; the first match wins.
TOPICS: tuple[tuple[str, str], ...] = (
    ("VideoSource/MotionAlarm", MOTION),
    ("RuleEngine/CellMotionDetector/Motion", MOTION),
    ("RuleEngine/MotionRegionDetector/Motion", MOTION),
    ("VideoAnalytics/MotionDetection", MOTION),
    ("VideoSource/GlobalSceneChange", TAMPER),
    ("VideoSource/ImageTooBlurry", TAMPER),
    ("VideoSource/ImageTooDark", TAMPER),
    ("VideoSource/ImageTooBright", TAMPER),
    ("RuleEngine/TamperDetector", TAMPER),
    ("RuleEngine/LineDetector/Crossed", LINE_CROSSING),
    ("RuleEngine/LineCrossingDetector", LINE_CROSSING),
    ("RuleEngine/FieldDetector/ObjectsInside", INTRUSION),
    ("RuleEngine/IntrusionDetector", INTRUSION),
    ("Device/Trigger/DigitalInput", INPUT),
    ("Device/IO/DigitalInput", INPUT),
)
_RULES = tuple((path.lower(), kind) for path, kind in TOPICS)

# Data items that carry the on/off state, by maker (compared case-insensitively).
STATE_ITEMS = ("state", "ismotion", "istamper", "isinside", "logicalstate", "active")
TRUE = ("true", "1", "on", "active")
FALSE = ("false", "0", "off", "inactive")


def topic_path(topic: str) -> str:
    """`tns1:RuleEngine/tnsaxis:Foo/Bar` -> `RuleEngine/Foo/Bar`: no prefixes, no
    empty steps."""
    steps = (step.rpartition(":")[2].strip() for step in topic.strip().split("/"))
    return "/".join(step for step in steps if step)


def kind_of(topic: str) -> str:
    path = topic_path(topic).lower()
    for rule, kind in _RULES:
        if path == rule or path.startswith(rule + "/"):
            return kind
    return OTHER


def state_of(data: tuple[tuple[str, str], ...]) -> bool | None:
    """The on/off state a notification carries, or None for a pulse (a line crossed,
    a one-off) that has no state."""
    for name, value in data:
        if name.lower() in STATE_ITEMS:
            value = value.strip().lower()
            if value in TRUE:
                return True
            if value in FALSE:
                return False
    return None


def source_text(source: tuple[tuple[str, str], ...]) -> str:
    """The source items in a stable order (which channel, rule or input), for keys and
    for the event's detail."""
    return ", ".join(f"{name}={value}" for name, value in sorted(source))
