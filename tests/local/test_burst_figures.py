"""The burst's arithmetic (bench/burst.py): delay-queue hops a longer burst adds, and the cost of its figures."""

from __future__ import annotations

import pytest

from picsart_local.bench.burst import PRICES, cost_per_1000, extra_hops, extrapolate


def test_a_burst_shorter_than_sqs_longest_delay_adds_no_hop_and_a_longer_one_adds_a_hop_per_900_s() -> None:
    assert extra_hops(5_000) == 0.0  # 10 windows: 600 s
    # 10,000 uploads wait up to 1,200 s: the quarter waiting longer than 900 s hops once more.
    assert extra_hops(10_000) == pytest.approx(0.25, abs=0.01)
    # 100,000 wait up to 12,000 s: 13 hops at most, about 6.2 on average.
    assert extra_hops(100_000) == pytest.approx(6.17, abs=0.05)


def test_cost_per_1000_uploads_is_the_figures_at_list_prices() -> None:
    figures = {
        "lambda_invocations_per_upload": 2.0,
        "lambda_gb_s_per_upload": 0.5,
        "sqs_requests_per_upload": 4.0,
        "ddb_write_units_per_upload": 6.0,
        "ddb_read_units_per_upload": 1.0,
        "s3_puts_per_upload": 1.0,
        "s3_gets_per_upload": 3.0,
    }
    costs = cost_per_1000(figures)
    assert costs["lambda"] == pytest.approx(1000 * (2 * PRICES["lambda_request"] + 0.5 * PRICES["lambda_gb_second"]))
    assert costs["dynamodb"] == pytest.approx(1000 * (6 * 0.625 + 1 * 0.125) / 1e6)
    assert costs["total"] == pytest.approx(sum(v for k, v in costs.items() if k != "total"))


def test_extrapolating_ten_times_the_uploads_adds_the_hops_and_the_windows() -> None:
    measured = {
        "uploads": 10_000,
        "makespan_s": 1_260.0,
        "floor_s": 1_142.0,
        "makespan_over_floor": 1.1,
        "arrivals_per_s": 20.0,
        "lambda_invocations_per_upload": 2.0,
        "lambda_gb_s_per_upload": 0.5,
        "sqs_requests_per_upload": 4.0,
        "ddb_write_units_per_upload": 6.0,
        "ddb_read_units_per_upload": 1.0,
        "s3_puts_per_upload": 1.0,
        "s3_gets_per_upload": 3.0,
        "delay_queue_hops_per_upload": 1.25,
    }
    bigger = extrapolate(measured, 100_000)
    added = extra_hops(100_000) - extra_hops(10_000)
    assert bigger["delay_queue_hops_per_upload"] == pytest.approx(1.25 + added)
    assert bigger["sqs_requests_per_upload"] == pytest.approx(4.0 + 3 * added)
    assert bigger["ddb_write_units_per_upload"] == 6.0, "a hop costs no DynamoDB"
    assert bigger["floor_s"] > 199 * 60
    assert bigger["makespan_s"] == pytest.approx(bigger["floor_s"] + (1_260.0 - 1_142.0))
