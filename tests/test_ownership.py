"""Runs belong to the browser that started them (#26): the rules in diffusion_core.services.ownership, applied by
the jobs module to stop, resume and delete; the teacher manages every run; runs without an owner are anyone's."""

from __future__ import annotations

import json

import pytest

from diffusion_core.services import jobs, run_status
from diffusion_core.services.ownership import (
    Actor,
    may_manage,
    owner_of,
    passphrase_matches,
    proof,
    proof_matches,
    run_name,
)
from tests.app_support import dead_pid, fake_run, stand_in_job

ALICE, BOB = "a" * 32, "b" * 32


def own(run_dir, token: str | None, name: str | None = None) -> None:
    job = json.loads((run_dir / "job.json").read_text())
    job.update(owner=None if token is None else owner_of(token), name=name)
    (run_dir / "job.json").write_text(json.dumps(job))


def test_the_rules():
    alice, bob = Actor(owner_of(ALICE)), Actor(owner_of(BOB))
    assert owner_of(ALICE) != owner_of(BOB) and len(owner_of(ALICE)) == 64 and ALICE not in owner_of(ALICE)
    assert may_manage(owner_of(ALICE), alice) and not may_manage(owner_of(ALICE), bob)
    assert may_manage(owner_of(ALICE), Actor(owner_of(BOB), teacher=True))
    assert may_manage(None, bob) and may_manage(owner_of(ALICE), None)  # no one's run; a trusted caller (CLI)
    with pytest.raises(ValueError, match="16–128 letters"):
        owner_of("short")
    assert passphrase_matches("owl", "owl") and not passphrase_matches("owl", "ow") and not passphrase_matches("", None)
    kept = proof("owl", ALICE)
    assert proof_matches(kept, "owl", ALICE) and not proof_matches(kept, "owl", BOB)  # bound to the browser
    assert not proof_matches(kept, "new passphrase", ALICE) and not proof_matches(None, "owl", ALICE)
    assert run_name("  Ada   cosine ") == "Ada cosine" and run_name("   ") is None and run_name(None) is None
    with pytest.raises(ValueError, match="at most 60"):
        run_name("x" * 61)


def test_stop_resume_and_delete_need_the_owner_or_the_teacher(tmp_path):
    done = fake_run(tmp_path, "run-done", dead_pid(), state="finished", epoch=3, epochs=3, losses=(0.3, 0.2, 0.1))
    own(done, ALICE, "Ada's first")
    job = stand_in_job()
    try:
        live = fake_run(tmp_path, "run-live", job.pid, state="running", epoch=1, epochs=5, losses=(0.5,))
        own(live, ALICE)
        bob, teacher = Actor(owner_of(BOB)), Actor(owner_of(BOB), teacher=True)
        assert run_status.read_run("run-done", tmp_path).title == "Ada's first (run-done)"
        with pytest.raises(run_status.JobError, match="run-live was started in another browser: only that browser or "
                                                      "the teacher can stop it"):
            jobs.stop_training("run-live", tmp_path, actor=bob)
        assert not (live / "STOP").exists()
        with pytest.raises(run_status.JobError, match="can resume it"):
            jobs.resume_training("run-done", 6, tmp_path, actor=bob)
        with pytest.raises(run_status.JobError, match="can delete it"):
            jobs.delete_run("run-done", tmp_path, actor=bob)
        with pytest.raises(run_status.JobError, match="is running; stop it before deleting it"):
            jobs.delete_run("run-live", tmp_path, actor=Actor(owner_of(ALICE)))
        assert jobs.stop_training("run-live", tmp_path, actor=teacher).state == "stopping"
    finally:
        job.kill()
        job.wait()
    moved = jobs.delete_run("run-done", tmp_path, actor=Actor(owner_of(ALICE)))
    assert moved.parent == tmp_path / run_status.DELETED and (moved / "metrics.jsonl").is_file()  # nothing erased
    assert [r.run_id for r in run_status.list_runs(tmp_path)] == ["run-live"]  # out of every list
    orphan = fake_run(tmp_path, "run-cli", dead_pid(), state="stopped", epoch=1, epochs=3, losses=(0.4,))
    own(orphan, None)
    jobs.delete_run("run-cli", tmp_path, actor=Actor(owner_of(BOB)))  # started outside the app: anyone's


def test_a_run_records_its_owner_and_name_never_the_token(tmp_path, monkeypatch):
    monkeypatch.setattr(jobs, "_launch", lambda run_dir, args, job, address: jobs.atomic_write_json(
        run_dir / "job.json", {**job, "pid": dead_pid(), "started": 0.0}))
    run = jobs.start_training({"epochs": 1, "arch": "cnn"}, tmp_path, owner=owner_of(ALICE), name=" Ada  ")
    text = (run.run_dir / "job.json").read_text()
    assert ALICE not in text and run.owner == owner_of(ALICE) and run.name == "Ada"
    with pytest.raises(run_status.JobError, match="at most 60 printable characters"):
        jobs.start_training({"epochs": 1, "arch": "cnn"}, tmp_path, name="\x07bell")
