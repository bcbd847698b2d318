"""Hypothesis state machines over the model.

Thin by design: each rule is one generator from ``fuzz.scenario`` (its choices
drawn by Hypothesis, so they shrink) turned into ``Switch.step`` calls; the
invariants are the oracle online and the model's structural invariants. The
machine keeps the trace, so a failure is a replayable trace as well as
Hypothesis's printed program (``last_failure`` holds the final, shrunk one).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.database import ExampleDatabase
from hypothesis.errors import HypothesisDeprecationWarning
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from fuzz import scenario as sc
from fuzz.invariants import CRASH, Checker, Failure, oracle_failure
from fuzz.scenario import Chooser, World
from silkcheck.trace import Trace


class DrawChooser:
    """Hypothesis's ``data.draw`` behind the generators' ``Chooser`` interface."""

    def __init__(self, data: Any) -> None:
        self.data = data

    def integer(self, low: int, high: int) -> int:
        return self.data.draw(st.integers(low, high))

    def pick(self, options: Any) -> Any:
        return self.data.draw(st.sampled_from(list(options)))

    def chance(self, percent: int) -> bool:
        return self.data.draw(st.integers(0, 99)) < percent


class PropertyFailed(AssertionError):
    def __init__(self, failure: Failure, trace: Trace) -> None:
        super().__init__(f"{failure.category}/{failure.kind}: {failure.message}")
        self.failure = failure
        self.trace = trace


last_failure: PropertyFailed | None = None
"""The failure of the most recent failing run (Hypothesis replays the shrunk example last)."""


MACHINE_FLOOD_MAX = 1_000
"""The machine judges the whole history after every step (``pcc_holds``), and Hypothesis draws
large floods often: its floods stay small (the random walk's reach 100,000)."""


class SilkRoadMachine(RuleBasedStateMachine):
    world: World
    checker: Checker
    steps = 0

    @initialize(data=st.data())
    def boot(self, data: Any) -> None:
        self.world = World.draw(DrawChooser(data), MACHINE_FLOOD_MAX)
        self.checker = Checker(self.world.switch)

    def _run(self, data: Any, generator: sc.Generator) -> None:
        chooser: Chooser = DrawChooser(data)
        if chooser.chance(60):
            sc.advance_clock(chooser, self.world)
        for event in generator(chooser, self.world):
            try:
                observation = self.world.apply(event)
            except Exception as error:  # the model itself broke: keep the trace that did it
                self.world.trace.events.append(event)
                self._fail(Failure(CRASH, type(error).__name__, str(error), len(self.world.trace.events) - 1))
            if observation is None:
                continue
            SilkRoadMachine.steps += 1
            failure = self.checker.after(event, observation)
            if failure is not None:
                self._fail(failure)

    def _fail(self, failure: Failure) -> None:
        global last_failure
        last_failure = PropertyFailed(failure, self.world.trace)
        raise last_failure

    @rule(data=st.data())
    def new_connection(self, data: Any) -> None:
        self._run(data, sc.new_connection)

    @rule(data=st.data())
    def connection_packet(self, data: Any) -> None:
        self._run(data, sc.connection_packet)

    @precondition(lambda self: self.world.config.syn_auth)
    @rule(data=st.data())
    def cookie_reply(self, data: Any) -> None:
        self._run(data, sc.cookie_reply)

    @precondition(lambda self: self.world.config.syn_auth)
    @rule(data=st.data())
    def cookie_replay(self, data: Any) -> None:
        self._run(data, sc.cookie_replay)

    @rule(data=st.data())
    def spoofed_packet(self, data: Any) -> None:
        self._run(data, sc.spoofed_packet)

    @rule(data=st.data())
    def syn_flood(self, data: Any) -> None:
        self._run(data, sc.syn_flood)

    @rule(data=st.data())
    def cpu_learn(self, data: Any) -> None:
        self._run(data, sc.cpu_learn)

    @rule(data=st.data())
    def cpu_advance(self, data: Any) -> None:
        self._run(data, sc.cpu_advance)

    @rule(data=st.data())
    def cpu_expire(self, data: Any) -> None:
        self._run(data, sc.cpu_expire)

    @rule(data=st.data())
    def cpu_write(self, data: Any) -> None:
        self._run(data, sc.cpu_write)

    @precondition(lambda self: bool(self.world.switch.pending))
    @rule(data=st.data())
    def packet_between_writes(self, data: Any) -> None:
        self._run(data, sc.packet_between_writes)

    @rule(data=st.data())
    def write_by_write(self, data: Any) -> None:
        self._run(data, sc.write_by_write)

    @rule(data=st.data())
    def placement_storm(self, data: Any) -> None:
        self._run(data, sc.placement_storm)

    @rule(data=st.data())
    def pool_update(self, data: Any) -> None:
        self._run(data, sc.pool_update)

    @rule(data=st.data())
    def update_race(self, data: Any) -> None:
        self._run(data, sc.update_race)

    @rule(data=st.data())
    def update_cycle(self, data: Any) -> None:
        self._run(data, sc.update_cycle)

    @rule(data=st.data())
    def cpu_deafness(self, data: Any) -> None:
        self._run(data, sc.cpu_deafness)

    @precondition(lambda self: bool(self.world.switch.dataplane.learn_queue))
    @rule(data=st.data())
    def learn_fault(self, data: Any) -> None:
        self._run(data, sc.learn_fault)

    @rule(data=st.data())
    def cpu_restart(self, data: Any) -> None:
        self._run(data, sc.cpu_restart)

    @rule(data=st.data())
    def dip_failure(self, data: Any) -> None:
        self._run(data, sc.dip_failure)

    @invariant()
    def pcc_holds(self) -> None:
        """The oracle, online: no violation among the observations so far."""
        if not hasattr(self, "world"):
            return
        failure, _ = oracle_failure(self.world.config, self.world.observations)
        if failure is not None:
            self._fail(failure)


def run_batch(examples: int, database: ExampleDatabase | None) -> tuple[int, PropertyFailed | None]:
    """Run the machine for ``examples`` examples: (model steps taken, the shrunk failure if any)."""
    global last_failure
    last_failure = None
    SilkRoadMachine.steps = 0
    # No Hypothesis shrinking here: it can take minutes, and ``fuzz.walk.shrink`` does it.
    batch = settings(
        max_examples=examples, stateful_step_count=50, deadline=None, database=database,
        suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
        phases=[Phase.explicit, Phase.reuse, Phase.generate],
    )  # fmt: skip
    with contextlib.suppress(PropertyFailed), warnings.catch_warnings():  # the failure is kept in ``last_failure``
        # On a Dask worker the event loop's thread draws from the global ``random`` (tornado's and
        # distributed's jittered timers) while this thread draws examples; Hypothesis sees the
        # global state move and blames our strategies, which never use it.
        warnings.filterwarnings("ignore", "Do not use the `random` module inside strategies",
                                HypothesisDeprecationWarning)  # fmt: skip
        run_state_machine_as_test(SilkRoadMachine, settings=batch)
    return SilkRoadMachine.steps, last_failure
