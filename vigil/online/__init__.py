"""Vigil's online anomaly model (used by the detector service and by ``vigil evaluate nab``).

>>> from vigil.online import OnlineConfig, OnlineDetector, OnlineScore
>>> det = OnlineDetector(["x"], OnlineConfig(warmup=0))
>>> isinstance(det.process({"x": 1.0}), OnlineScore)
True
"""

from vigil.online.config import OnlineConfig
from vigil.online.detector import OnlineDetector, OnlineScore
from vigil.online.threshold import AlarmCooldown

__all__ = ["AlarmCooldown", "OnlineConfig", "OnlineDetector", "OnlineScore"]
