"""With no address, ray.init() joins the cluster a `ray start` on this machine left in <ray temp dir>/ray_current_cluster
(as Ray documents), not a fresh local Ray: the driver's early checks must not count this machine's CPUs and GPUs for it
(a head node without GPUs refused --actors 8 --use-gpus that its GPU workers hold).

The address file stands in for a `ray start --head`: stopping a real one (`ray stop`) stops every Ray on the machine."""
from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")


@pytest.fixture
def started_cluster(tmp_path, monkeypatch):
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "ray_current_cluster").write_text("127.0.0.1:6379")  # what `ray start` writes


def test_no_address_with_a_started_cluster_is_not_counted_here(started_cluster):
    from o1_retriever.distributed.runtime import check_actors_fit, runs_here
    assert not runs_here(None)  # ray.init() would join the started cluster
    assert runs_here("local")  # address='local' starts a new Ray whatever runs
    check_actors_fit(4 * (os.cpu_count() or 1), False, None)  # the joined cluster counts them once joined
    with pytest.raises(ValueError, match="actors"):
        check_actors_fit(4 * (os.cpu_count() or 1), False, "local")


def test_no_address_and_no_started_cluster_counts_here(tmp_path, monkeypatch):
    if ray.is_initialized():
        pytest.skip("Ray is already running in this process (run this test first or alone)")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path))
    from o1_retriever.distributed.runtime import check_actors_fit, runs_here
    assert runs_here(None)
    with pytest.raises(ValueError, match="actors"):
        check_actors_fit(4 * (os.cpu_count() or 1), False, None)
