"""``vigil seed``: write labelled synthetic history into InfluxDB, read its labels back, plot a host.

The hosts come from the core's generator (:mod:`vigil.synthetic`), which the pipelines and the
stress loads share; this package is the writing (:func:`seed_history`) and the command.
"""

from toolkit.seed.history import SeedResult, seed_history
from vigil.labels import load_labels  # what a seed wrote: the one reader of label windows

__all__ = ["SeedResult", "load_labels", "seed_history"]
