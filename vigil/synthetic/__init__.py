"""Labelled synthetic history in the Telegraf schema (``vigil seed``).

Public API: :func:`seed_history` writes metrics + ground-truth label windows,
:func:`load_labels` reads the windows back.
"""

from vigil.synthetic.history import SeedResult, generate_host, load_labels, seed_history

__all__ = ["SeedResult", "generate_host", "load_labels", "seed_history"]
