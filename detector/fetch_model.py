"""``python -m detector.fetch_model``: load one registry version with MLflow, hand back its model.

Run by :func:`detector.registry.load_version` as a short-lived child, so that MLflow (and its
~55 MB) is imported here and never in the long-running detector. Writes the
:class:`~vigil.model.AnomalyModel` the pyfunc wraps to ``--out`` (pickled, atomically) and exits 0;
exits 3 (:data:`detector.registry.NOT_A_VIGIL_MODEL`) if the version is not Vigil's contract;
anything else is a failure, explained on stderr.
"""

from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.fetch_model")
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--version", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)

    import mlflow
    from detector.registry import NOT_A_VIGIL_MODEL
    from detector.state import write_atomic
    from vigil.model import AnomalyModel

    mlflow.set_tracking_uri(a.tracking_uri)
    mlflow.set_registry_uri(a.tracking_uri)
    uri = f"models:/{a.name}/{a.version}"
    try:
        pyfunc = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # noqa: BLE001 - the parent reports it; one line is enough
        print(f"{uri} failed to load: {exc.__class__.__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        model = pyfunc.unwrap_python_model().model
    except Exception:  # noqa: BLE001 - not a PythonModel, or one without .model
        model = None
    if not isinstance(model, AnomalyModel):
        print(f"{uri} is not a Vigil contract model ({type(model).__name__})", file=sys.stderr)
        return NOT_A_VIGIL_MODEL
    try:
        write_atomic(a.out, lambda fh: pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL))
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        print(f"{uri} cannot be handed over by pickle ({exc}); load it with MLflow", file=sys.stderr)
        return NOT_A_VIGIL_MODEL
    return 0


if __name__ == "__main__":
    sys.exit(main())
