"""The small error hierarchy every subsystem raises (see ../shared/STYLE.md)."""


class VigilError(Exception):
    """Base of every error the appliance raises on purpose."""


class InvalidConfig(VigilError):
    """A setting or argument is wrong; fatal at start, a clear message for the owner."""


class Unavailable(VigilError):
    """Something needed is not there right now (camera, disk); retry later."""


class FailedPrecondition(VigilError):
    """The system is not in a state that allows the operation."""


class DataLoss(VigilError):
    """Stored data is damaged or missing."""


class ResourceExhausted(VigilError):
    """A limit was reached (disk full, channel count, bandwidth budget)."""
