"""scripts/versions.py, the check .ci/run makes that an extra's install downgraded nothing of the base install."""

import importlib.util
import json
from pathlib import Path

spec = importlib.util.spec_from_file_location("versions", Path(__file__).parents[1] / "scripts" / "versions.py")
versions = importlib.util.module_from_spec(spec)
spec.loader.exec_module(versions)


def test_downgrades_are_named_and_upgrades_pass():
    before = {"ortools": "9.15.6755", "protobuf": "6.33.6", "numpy": "2.1.0", "gone": "1.0"}
    after = {"ortools": "9.12.4544", "protobuf": "6.33.6", "numpy": "2.3.1", "pyarrow": "20.0.0"}
    assert versions.downgrades(before, after) == ["gone 1.0 was removed", "ortools 9.15.6755 -> 9.12.4544"]
    assert versions.downgrades(before, {**before, "numpy": "2.10.0"}) == []  # 2.10 is newer than 2.1


def test_check_against_a_snapshot_of_this_environment(tmp_path, capsys):
    snap = tmp_path / "base.json"
    assert versions.main(["save", str(snap)]) == 0
    assert versions.main(["check", str(snap)]) == 0
    data = json.loads(snap.read_text())
    data["torch"] = "999.0"  # pretend the base install had a newer torch than the one here
    snap.write_text(json.dumps(data))
    assert versions.main(["check", str(snap)]) == 1
    assert "torch 999.0 -> " in capsys.readouterr().err
