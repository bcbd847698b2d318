"""Counterexamples as PTF tests: ``silkcheck export --ptf OUT.py TRACE``.

The exported test is a plain PTF test (``ptf.base_tests.BaseTest``): it loads a fresh
pipeline, starts the controller through its adapter, sends the trace's packets on the
client port at their times and asks the adapter for the trace's pool changes at theirs,
collects what leaves by the server ports (a frame is matched to its packet by the IPv4
identification, as in the black-box target) and asserts PCC: every forwarded packet of a
connection (a 5-tuple, split at a SYN after FIN/RST as the oracle does) leaves towards the
same DIP. It reads the switch's P4Runtime address from the PTF test parameter ``grpc``.

``silkcheck ptf OUT.py --example NAME`` (or ``--program/--p4info/--controller``) runs it:
a namespace with veth pairs and ``simple_switch_grpc`` on them, then ``ptf`` inside the
namespace on the harness ends (``-i 1@h1 -i 2@h2``). PTF's exit code is its verdict.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from model import events as ev
from silkcheck.blackbox.harness import Setup, check_blackbox_trace
from silkcheck.blackbox.ports import Namespace
from silkcheck.inputs import InputError
from silkcheck.trace import Trace, event_to_dict, to_dict

TEMPLATE = '''"""PTF test exported by silkcheck from {source}: {name}.

Sends the trace's packets, asks the controller adapter for its pool changes at the same
points, and asserts PCC on what comes out. Run: {runner}
"""

import json
import time
from pathlib import Path

import ptf
import ptf.testutils as testutils
from ptf.base_tests import BaseTest

from model.events import PacketArrives
from silkcheck import frames
from silkcheck.blackbox.controller import SwitchAddress, election_ids, load_adapter, start_controller
from silkcheck.p4runtime import P4Info, P4RuntimeClient
from silkcheck.trace import from_dict

TRACE = json.loads({trace!r})
SETUP = {{
    # The load balancer the trace was exported from; PTF test parameters of the same names
    # (silkcheck ptf sets them from its setup options) run it on another.
    "program": {program!r},
    "p4info": {p4info!r},
    "controller": {controller!r},
    "client_port": {client_port},
    "server_ports": {server_ports!r},
}}
QUIET_S = 1.0
"""The test waits this long after the last frame for more: PTF has no barrier."""


class PccTest(BaseTest):
    def setUp(self):
        BaseTest.setUp(self)
        self.dataplane = ptf.dataplane_instance
        self.dataplane.flush()
        params = testutils.test_params_get()
        self.setup = {{name: params.get(name, default) for name, default in SETUP.items()}}
        grpc = params["grpc"]
        elections = election_ids()
        loader = P4RuntimeClient(grpc, election_id=next(elections))
        with open(self.setup["program"], "rb") as device_json:
            loader.set_pipeline(P4Info(Path(self.setup["p4info"])), device_json.read())
        loader.close()
        self.trace = from_dict(TRACE, "exported trace")
        self.adapter = load_adapter(self.setup["controller"])()
        start_controller(self.adapter, lambda: SwitchAddress(grpc, 0, next(elections)), dict(self.trace.vips), False)

    def tearDown(self):
        self.adapter.stop()
        BaseTest.tearDown(self)

    def runTest(self):
        sent = {{}}
        start = time.monotonic()
        for number, event in enumerate(self.trace.events, start=1):
            while time.monotonic() - start < event.t / 1e6:
                time.sleep(0.0002)
            if isinstance(event, PacketArrives):
                sent[number] = event.packet
                frame = frames.packet_frame(event.packet)._replace(ident=number).to_bytes()
                testutils.send_packet(self, self.setup["client_port"], frame)
            else:
                self.adapter.change_pool(event.vip, event.pool)
        dips = {{}}
        while True:
            result = testutils.dp_poll(self, timeout=QUIET_S)
            if not isinstance(result, self.dataplane.PollSuccess):
                break
            if result.port not in self.setup["server_ports"]:
                continue
            out = frames.parse(bytes(result.packet))
            if out.ident in sent:
                dips[out.ident] = (out.dst_ip, out.dst_port)
        seen = {{}}
        for number, packet in sent.items():
            if number not in dips:
                continue  # dropped: PCC says nothing about it
            ft = packet.ft
            if packet.is_syn and ft in seen and seen[ft][1]:
                del seen[ft]  # a SYN after FIN/RST opens a new connection on the 5-tuple
            first, closed = seen.get(ft, (dips[number], False))
            self.assertEqual(first, dips[number], f"{{ft}}: packet {{number}} left towards another DIP than its "
                                                  "connection's first packet (PCC violated)")
            seen[ft] = (first, closed or packet.is_end)
'''


def export_ptf(trace: Trace, setup: Setup, out: Path) -> Path:
    check_blackbox_trace(trace)
    kept = [e for e in trace.events if isinstance(e, ev.PacketArrives | ev.UpdateRequested)]
    data = to_dict(Trace(trace.config, trace.vips, kept, trace.name, trace.description))
    data["events"] = [event_to_dict(e) for e in kept]
    out = out.with_suffix(".py")
    runner = f"silkcheck ptf {out} " + (f"--example {setup.extra['example']}" if "example" in setup.extra else
                                         f"--program {setup.program} --p4info {setup.p4info} "
                                         f"--controller {setup.controller}")  # fmt: skip
    out.write_text(TEMPLATE.format(source=trace.name or "a trace", name=trace.description or "", runner=runner,
                                   trace=json.dumps(data), **_setup_params(setup)))  # fmt: skip
    return out


def _setup_params(setup: Setup) -> dict[str, object]:
    """The setup as the exported test reads it: absolute paths, the first client port."""
    return {"program": str(Path(setup.program).resolve()), "p4info": str(Path(setup.p4info).resolve()),
            "controller": _absolute(setup.controller), "client_port": setup.client_ports[0],
            "server_ports": tuple(setup.server_ports)}  # fmt: skip


def _absolute(spec: str) -> str:
    where, name = spec.split(":")
    return f"{Path(where).resolve()}:{name}" if where.endswith(".py") else spec


def run_ptf(test: Path, setup: Setup) -> int:
    """The exported test under ``ptf``, against a fresh BMv2 on veth pairs; PTF's exit code."""
    from silkcheck.targets.bmv2 import SimpleSwitch

    if test.suffix != ".py" or not test.is_file():
        raise InputError(f"{test}: no such test (a .py file written by silkcheck export --ptf)")
    namespace = Namespace(setup.ports)
    try:
        switch = SimpleSwitch(interfaces=namespace.interfaces, launcher=namespace.launcher, unix_grpc=True)
        try:
            # ptf imports every module below --test-dir: give it a folder holding only this test.
            tests = switch.workdir / "ptf-test"
            tests.mkdir()
            shutil.copy(test, tests / test.name)
            interfaces = [arg for port in setup.ports for arg in ("-i", f"{port}@{namespace.harness_side(port)}")]
            ptf = Path(sys.executable).with_name("ptf")
            logs = switch.workdir / "ptf-logs"  # not the switch's own folder: ptf empties its log folder
            params = {"grpc": switch.grpc_address, **_setup_params(setup)}
            command = [
                *namespace.launcher, str(ptf), "--test-dir", str(tests), *interfaces, "--log-dir", str(logs),
                "--test-params", ";".join(f"{name}={value!r}" for name, value in params.items()), test.stem,
            ]  # fmt: skip
            return subprocess.run(command, check=False).returncode
        finally:
            switch.stop()
    finally:
        namespace.close()
