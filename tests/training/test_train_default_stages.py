"""scripts/train_default.sh skips a stage whose model is exported. An export moves adapter_config.json in last, so a
stage killed while its export moved files in (weights there, adapter_config.json not yet) is not finished and must
be trained (resumed) again, not passed over with half a model."""
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "train_default.sh"


def _trained(run: Path, stage: str) -> bool:
    line = next(ln for ln in SCRIPT.read_text().splitlines() if ln.startswith("trained() "))
    return subprocess.run(["bash", "-c", f'{line}\ntrained "$1"', "-", stage], env={"RUN": str(run)}).returncode == 0


def test_a_stage_whose_export_was_killed_part_way_is_not_taken_for_trained(tmp_path):
    half = tmp_path / "model"
    half.mkdir()
    (half / "adapter_model.safetensors").write_bytes(b"weights")  # moved in before adapter_config.json
    assert not _trained(tmp_path, "model")
    (half / "adapter_config.json").write_text("{}")  # the last entry an export moves in
    assert _trained(tmp_path, "model")
    assert not _trained(tmp_path, "model2")
