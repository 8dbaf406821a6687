"""Process safety: admission by memory and CPUs, stale-VM reaping, port leases."""
import json
import subprocess
import sys

import pytest

from harness import runtime
from harness.errors import LivelabError


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVELAB_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def test_admission_by_memory_and_cpus():
    adm = runtime.Admission(total_mem_mib=10000, cpus=2)   # usable: 10000 - 2048 headroom
    adm.acquire("a", 3000, 1, timeout=1)
    adm.acquire("b", 3000, 1, timeout=1)
    with pytest.raises(LivelabError, match="waited"):
        adm.acquire("c", 512, 1, timeout=0.6)              # CPUs exhausted
    adm.release("b")
    adm.acquire("c", 512, 1, timeout=1)
    adm.release("c")
    with pytest.raises(LivelabError, match="waited"):
        adm.acquire("d", 5000, 1, timeout=0.6)             # memory exhausted (3256 + 5256 > 7952)
    with pytest.raises(LivelabError, match="at most"):
        adm.acquire("e", 64000, 1, timeout=1)              # never fits: refused at once


def test_admission_forgets_claims_of_dead_processes(state):
    adm = runtime.Admission(total_mem_mib=6000, cpus=2)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    state.mkdir(parents=True, exist_ok=True)
    (state / "admission.json").write_text(json.dumps({"ghost": {"mem": 3900, "cpus": 2, "owner_pid": dead.pid,
                                                                 "owner_start": "1"}}))
    adm.acquire("live", 3000, 2, timeout=1)


def _sleeper():
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_reap_kills_vms_of_dead_owners_only(state, tmp_path):
    orphan, mine = _sleeper(), _sleeper()
    try:
        runtime.register_vm(mine.pid, "mine", tmp_path)
        rec = runtime.register_vm(orphan.pid, "orphan", tmp_path)
        data = json.loads(rec.read_text())
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        data.update(owner_pid=dead.pid, owner_start="1")
        rec.write_text(json.dumps(data))
        assert runtime.reap_stale(log=lambda m: None) == ["orphan"]
        assert orphan.wait(timeout=5) == -9
        assert mine.poll() is None
        assert not rec.exists()
    finally:
        for p in (orphan, mine):
            p.kill()
            p.wait()


def test_port_leases_do_not_collide():
    leases = [runtime.lease_port() for _ in range(20)]
    ports = [lease.port for lease in leases]
    assert len(set(ports)) == 20
    for lease in leases:
        lease.release()


def test_plan_workers_by_cores_and_memory():
    # CI's host: 2 cores, about 23 GiB free: two VMs of the largest minimum (4096 MiB) at once
    assert runtime.plan_workers(4096, mem_available=23500, cpus=2) == 2
    assert runtime.plan_workers(4096, mem_available=23500, cpus=16) == 4      # (23500 - 2048) // 4352
    assert runtime.plan_workers(4096, mem_available=5000, cpus=16) == 1       # memory bound, at least one
    assert runtime.plan_workers(4096, mem_available=1000, cpus=16) == 1


def test_auto_vm_cpus_shares_the_cores(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert runtime.auto_vm_cpus(cpus=2) == 2                  # one VM at a time: the default 2
    assert runtime.auto_vm_cpus(cpus=16) == runtime.DEFAULT_VM_CPUS
    assert runtime.auto_vm_cpus(cpus=1) == 1
    assert runtime.auto_vm_cpus(2, cpus=2) == 1               # a 2-worker matrix on 2 cores
    # inside an xdist worker, and in a pytest or livelab a test started from it
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "2")
    assert runtime.auto_vm_cpus(cpus=2) == 1
    assert runtime.auto_vm_cpus(cpus=8) == 2
    assert runtime.auto_vm_cpus(2, cpus=8) == 2 and runtime.auto_vm_cpus(4, cpus=8) == 1
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "junk")
    assert runtime.auto_vm_cpus(cpus=2) == 2


def test_parse_vm_cpus(monkeypatch):
    monkeypatch.delenv("PYTEST_XDIST_WORKER_COUNT", raising=False)
    assert runtime.parse_vm_cpus("3") == 3 and runtime.parse_vm_cpus(1) == 1
    assert runtime.parse_vm_cpus("auto") == runtime.auto_vm_cpus()
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(LivelabError, match=r"--vm-cpus '.*': expected a positive number or 'auto'"):
            runtime.parse_vm_cpus(bad)


def test_xdist_auto_workers_come_from_livelab(monkeypatch):
    """pytest -n auto asks livelab: one worker per VM that cores and memory hold (4096 MiB the largest)."""
    from harness import pytest_plugin
    monkeypatch.setattr(runtime, "host_resources", lambda: (23500, 2))
    assert pytest_plugin.pytest_xdist_auto_num_workers(None) == 2
    monkeypatch.setattr(runtime, "host_resources", lambda: (7000, 16))
    assert pytest_plugin.pytest_xdist_auto_num_workers(None) == 1          # (7000 - 2048) // 4352
