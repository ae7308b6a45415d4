"""``vigil evaluate nab`` end to end on two short series cut from the shared NAB corpus."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from support.shared_data import SHARED

from toolkit.cli import main

NAB = SHARED / "nab"
CAT = "realAWSCloudwatch"
#: (file, rows kept): each cut keeps the file's first labelled window
CUTS = {"elb_request_count_8c0756.csv": 1300, "ec2_cpu_utilization_53ea38.csv": 1700}


def make_corpus(root: Path, windows_shift: int = 0) -> Path:
    """A NAB-layout folder with shortened series, their first window, and numenta's results."""
    all_windows = json.loads((NAB / "labels" / "combined_windows.json").read_text())
    labels = {}
    (root / "data" / CAT).mkdir(parents=True)
    (root / "results" / "numenta" / CAT).mkdir(parents=True)
    for name, rows in CUTS.items():
        frame = pd.read_csv(NAB / "data" / CAT / name, dtype={"timestamp": str}).head(rows)
        frame.to_csv(root / "data" / CAT / name, index=False)
        start, end = all_windows[f"{CAT}/{name}"][0]
        if windows_shift:  # a different (wrong) window, to prove detection ignores labels
            ts = frame["timestamp"].tolist()
            start, end = ts[800 + windows_shift], ts[900 + windows_shift]
        labels[f"{CAT}/{name}"] = [[start, end]]
        pd.read_csv(NAB / "results" / "numenta" / CAT / f"numenta_{name}").head(rows).to_csv(
            root / "results" / "numenta" / CAT / f"numenta_{name}", index=False
        )
    (root / "labels").mkdir()
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels))
    return root


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory: pytest.TempPathFactory):
    base = tmp_path_factory.mktemp("nab")
    data = make_corpus(base / "corpus")
    out = base / "out"
    result = CliRunner().invoke(main, ["evaluate", "nab", "--data", str(data), "--out", str(out)])
    return data, out, result


def test_cli_writes_every_output(cli_run):
    data, out, result = cli_run
    assert result.exit_code == 0, result.output
    assert re.search(
        r"took \d+ s with \d+ worker\(s\); load [\d.]+/[\d.]+/[\d.]+ on \d+ cores", result.output
    )
    for name, rows in CUTS.items():
        csv = out / "vigil" / CAT / f"vigil_{name}"
        frame = pd.read_csv(csv)
        assert list(frame.columns) == ["timestamp", "value", "anomaly_score", "label"]
        assert len(frame) == rows
        assert frame["anomaly_score"].between(0.0, 1.0).all()
        assert frame["label"].sum() > 0  # the window is marked
        png = csv.with_suffix(".png")
        assert png.stat().st_size > 10_000
    report = json.loads((out / "nab_report.json").read_text())
    assert set(report["detectors"]) == {"vigil", "numenta"}
    for det in report["detectors"].values():
        assert set(det["profiles"]) == {"standard", "reward_low_FP_rate", "reward_low_FN_rate"}
    own = report["detectors"]["vigil"]["own_alarms"]
    assert own["windows"] == 2 and own["scored_rows"] == sum(r - int(0.15 * r) for r in CUTS.values())
    md = (out / "nab_report.md").read_text()
    assert "## Profile `standard`" in md and "| numenta |" in md
    assert "## Profile `reward_low_FN_rate`" in result.output  # the report is printed too


def test_results_written_by_the_cli_rescore_to_the_reported_number(cli_run):
    """NAB-layout results are self-contained: scoring the CSVs again gives the report's score."""
    from pipelines.nab.data import load_corpus, load_published_scores
    from pipelines.nab.scorer import file_layout, score_detector

    data, out, _ = cli_run
    corpus = load_corpus(data)
    layouts = {s.key: file_layout(s.n_rows, s.window_indices(), s.probation_rows) for s in corpus}
    shutil.copytree(out / "vigil", data / "results" / "vigil_rescored", dirs_exist_ok=True)
    for s in corpus:
        src = data / "results" / "vigil_rescored" / s.category / f"vigil_{s.filename}"
        src.rename(src.with_name(f"vigil_rescored_{s.filename}"))
    rescored = score_detector(layouts, load_published_scores(data, "vigil_rescored", corpus))
    report = json.loads((out / "nab_report.json").read_text())
    reported = report["detectors"]["vigil"]["profiles"]["standard"]["normalised"]
    assert rescored["standard"].normalised == pytest.approx(reported, abs=1e-3)  # CSV rounding


def test_detection_does_not_read_labels(tmp_path: Path):
    from pipelines.nab.evaluate import evaluate_nab

    a = make_corpus(tmp_path / "a")
    b = make_corpus(tmp_path / "b", windows_shift=50)
    for root in (a, b):
        evaluate_nab(root, root / "out", only=["elb"], plots=False, echo=lambda _: None)
    csv = Path("vigil") / CAT / "vigil_elb_request_count_8c0756.csv"
    sa, sb = pd.read_csv(a / "out" / csv), pd.read_csv(b / "out" / csv)
    assert (sa["label"] != sb["label"]).any()
    pd.testing.assert_series_equal(sa["anomaly_score"], sb["anomaly_score"])


def test_cli_bad_input_is_a_clear_error(tmp_path: Path):
    result = CliRunner().invoke(
        main, ["evaluate", "nab", "--data", str(tmp_path), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code != 0
    assert "combined_windows.json" in result.output


def test_data_is_required_and_workers_do_not_change_results(tmp_path: Path):
    """No default corpus path; spreading series over processes changes nothing but speed."""
    result = CliRunner().invoke(main, ["evaluate", "nab", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "--data" in result.output
    data = make_corpus(tmp_path / "c")
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        run = CliRunner().invoke(
            main,
            ["evaluate", "nab", "--data", str(data), "--out", str(out), "--no-plots", "--workers", workers],
        )
        assert run.exit_code == 0, run.output
    for name in CUTS:
        csv = Path("vigil") / CAT / f"vigil_{name}"
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "w1" / csv), pd.read_csv(tmp_path / "w2" / csv))
