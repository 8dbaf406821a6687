"""Every scenario of scenarios/ becomes pytest cases named <os>.<stream>.<method>.<firmware>.<scenario>."""
import pytest

from harness import scenario as sc


def _params():
    params = []
    for s in sc.load_all():
        for tid, os_id, stream, method, fw in s.cases():
            marks = [pytest.mark.e2e]
            if tid.rsplit(".", 1)[0] in s.ci:
                marks.append(pytest.mark.ci)
            if s.slow:
                marks.append(pytest.mark.slow)
            params.append(pytest.param(s, os_id, stream, method, fw, id=tid, marks=marks))
    return params


@pytest.mark.parametrize("scenario,os_id,stream,method,firmware", _params())
def test_scenario(live_vm, livelab, scenario, os_id, stream, method, firmware):
    req = scenario.request(os_id, stream, method, firmware)
    lb = live_vm(req, start=False, below_minimum=scenario.below_minimum)
    log = sc.run_scenario(scenario, lb)
    for line in log:
        print(line)
    # the evidence is kept with the VM's artifacts (every scenario has checks)
    assert log and (lb.run_dir / "checks.log").read_text().splitlines() == log
    m = lb.machine
    if lb.config and req.ssh and m.running and m.ssh is not None and not scenario.boots[-1].expect_failure:
        # the memory asked for (the documented minimum by default) is what the guest has
        total = m.memory_total_mib()
        assert 0.85 * req.memory_mib <= total <= req.memory_mib, (total, req.memory_mib)
