"""The fleet's circuit against DynamoDB (moto server, the table built from template.yaml).

Each test uses its own API key, so its own circuit item. Clocks are injected: "after the probe time" is set,
not waited for.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest

from picsart_adapter.circuit import CircuitSettings, Closed, FleetCircuit, Open, Probe, Tripped
from picsart_adapter.outcomes import Outcome

from .conftest import Clock

T0 = 1_800_000_000.0


def make(table: Any, api_key: str, clock: Clock, threshold: int = 3) -> FleetCircuit:
    settings = CircuitSettings(
        probe_seconds=60, max_probe_seconds=300, validation_failure_threshold=threshold, probe_lease_seconds=30
    )
    return FleetCircuit(table, lambda: api_key, settings, clock=clock)


def open_with_401(circuit: FleetCircuit) -> Tripped:
    tripped = circuit.record(Closed(), Outcome.CONFIGURATION, 401, "HTTP 401: invalid API key", "corr-401")
    assert tripped is not None
    return tripped


def test_calls_go_ahead_while_nothing_went_wrong(table: Any, api_key: str) -> None:
    assert make(table, api_key, Clock(T0)).admit() == Closed(0)


@pytest.mark.parametrize(("status", "outcome"), [(401, Outcome.CONFIGURATION), (402, Outcome.CREDITS)])
def test_a_fault_opens_the_circuit_for_every_invocation(table: Any, api_key: str, status: int, outcome: Any) -> None:
    clock = Clock(T0)
    tripped = make(table, api_key, clock).record(Closed(), outcome, status, f"HTTP {status}: refused", "corr-x")
    assert tripped == Tripped(T0 + 60, f"HTTP {status}: refused", opened_now=True)
    other_invocation = make(table, api_key, clock)
    assert other_invocation.admit() == Open(T0 + 60, f"HTTP {status}: refused")
    state = other_invocation.state()
    assert (state["state"], state["http_status"], state["picsart_correlation_id"]) == ("open", status, "corr-x")
    assert api_key not in repr(state), "the key is never stored"


def test_only_the_first_invocation_to_see_the_fault_opens_it(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    first = open_with_401(make(table, api_key, clock))
    clock.now += 5
    second = open_with_401(make(table, api_key, clock))
    assert (first.opened_now, second.opened_now) == (True, False)
    assert second.probe_at == first.probe_at, "a later fault does not push the probe back"


def test_exactly_one_of_many_concurrent_invocations_probes(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    open_with_401(make(table, api_key, clock))
    clock.now = T0 + 61
    callers = 12
    circuits = [make(table, api_key, clock) for _ in range(callers)]
    start = threading.Barrier(callers)
    results: list[Any] = [None] * callers

    def run(index: int) -> None:
        start.wait()
        results[index] = circuits[index].admit()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(isinstance(r, Probe) for r in results) == 1
    assert all(isinstance(r, Open) for r in results if not isinstance(r, Probe))


def test_a_successful_probe_closes_the_circuit(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    open_with_401(make(table, api_key, clock))
    clock.now = T0 + 61
    circuit = make(table, api_key, clock)
    probe = circuit.admit()
    assert isinstance(probe, Probe)
    assert circuit.record(probe, Outcome.SUCCESS, 200, "ok") is None
    assert make(table, api_key, clock).admit() == Closed(0)


def test_a_failed_probe_keeps_it_open_and_doubles_the_wait_up_to_the_cap(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    open_with_401(make(table, api_key, clock))
    waits = []
    probe_at = T0 + 60
    for _ in range(4):
        clock.now = probe_at + 1
        circuit = make(table, api_key, clock)
        probe = circuit.admit()
        assert isinstance(probe, Probe)
        tripped = circuit.record(probe, Outcome.CONFIGURATION, 401, "HTTP 401: still invalid")
        assert tripped is not None
        assert not tripped.opened_now
        waits.append(round(tripped.probe_at - clock.now))
        probe_at = tripped.probe_at
        assert isinstance(make(table, api_key, clock).admit(), Open)
    assert waits == [120, 240, 300, 300]


def test_an_inconclusive_probe_lets_another_invocation_probe(table: Any, api_key: str) -> None:
    """A 429 or a 5xx says nothing about the key: the probe's turn is given back, the wait is not doubled."""
    clock = Clock(T0)
    open_with_401(make(table, api_key, clock))
    clock.now = T0 + 61
    circuit = make(table, api_key, clock)
    probe = circuit.admit()
    assert isinstance(probe, Probe)
    assert circuit.record(probe, Outcome.TRANSIENT, 503, "HTTP 503") is None
    assert isinstance(make(table, api_key, clock).admit(), Probe)


def test_a_crashed_probe_holds_the_circuit_only_until_its_lease_runs_out(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    open_with_401(make(table, api_key, clock))
    clock.now = T0 + 61
    assert isinstance(make(table, api_key, clock).admit(), Probe)  # and never answers
    waiting = make(table, api_key, clock).admit()
    assert isinstance(waiting, Open)
    assert waiting.retry_at == pytest.approx(T0 + 61 + 30)
    clock.now = T0 + 92
    assert isinstance(make(table, api_key, clock).admit(), Probe)


def test_a_stream_of_validation_failures_opens_the_circuit(table: Any, api_key: str) -> None:
    """A bad parameter in the configuration would otherwise fail every upload with a 422, call after call."""
    clock = Clock(T0)
    circuit = make(table, api_key, clock, threshold=3)
    assert circuit.record(Closed(), Outcome.PERMANENT, 422, "HTTP 422: bg_blur") is None
    assert circuit.record(Closed(), Outcome.PERMANENT, 400, "HTTP 400: bad request") is None
    tripped = circuit.record(Closed(), Outcome.PERMANENT, 422, "HTTP 422: bg_blur")
    assert tripped is not None
    assert tripped.opened_now
    assert tripped.reason.startswith("3 validation failures in a row")
    assert isinstance(circuit.admit(), Open)


def test_a_success_breaks_the_validation_streak(table: Any, api_key: str) -> None:
    clock = Clock(T0)
    circuit = make(table, api_key, clock, threshold=3)
    circuit.record(Closed(), Outcome.PERMANENT, 422, "HTTP 422")
    circuit.record(Closed(), Outcome.PERMANENT, 422, "HTTP 422")
    admission = circuit.admit()
    assert admission == Closed(2)
    circuit.record(admission, Outcome.SUCCESS, 200, "ok")
    assert circuit.admit() == Closed(0)
    assert circuit.record(Closed(), Outcome.PERMANENT, 422, "HTTP 422") is None


def test_input_specific_refusals_do_not_count_towards_the_streak(table: Any, api_key: str) -> None:
    """413 and 415 are about one image, not about the configuration."""
    circuit = make(table, api_key, Clock(T0), threshold=2)
    for status in (413, 415, 413, 415):
        assert circuit.record(Closed(), Outcome.PERMANENT, status, f"HTTP {status}") is None
    assert circuit.admit() == Closed(0)
