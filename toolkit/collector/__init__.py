"""The local stand-in for Telegraf: ``vigil collect``.

Telegraf cannot be installed on these machines, so this package reads the same
sources (``/proc`` through psutil) and writes exactly what the real agent would
for the inputs that ``telegraf/telegraf.conf`` enables and that can be read
here (cpu, mem, net, diskio, system, processes, procstat). One module per
input keeps each mapping small enough to check against Telegraf's Go code.
"""

from toolkit.collector.config import CollectorConfig, load_config
from toolkit.collector.loop import Collector

__all__ = ["Collector", "CollectorConfig", "load_config"]
