"""The burst's arithmetic (bench/burst.py): delay-queue hops a longer burst adds, and the cost of its figures."""

from __future__ import annotations

import pytest

from picsart_local.bench.burst import PARK_COSTS, PRICES, REDELAY_COSTS, cost_per_1000, extrapolate, line_waits


def test_uploads_arriving_no_faster_than_picsart_takes_them_do_not_wait() -> None:
    assert line_waits(100_000, 8.0) == (0.0, 0.0)


def test_a_burst_all_at_once_waits_in_a_line_that_hops_once_per_900_s() -> None:
    assert line_waits(5_000, None) == (1.0, 0.0)  # 600 s of line: no re-delay
    # 10,000 wait up to 1,200 s: the quarter waiting longer than 900 s hops once more.
    assert line_waits(10_000, None)[1] == pytest.approx(0.25, abs=0.01)
    # 100,000 wait up to 12,000 s: 13 hops at most, about 6.2 on average.
    assert line_waits(100_000, None)[1] == pytest.approx(6.17, abs=0.05)
    waiting, _ = line_waits(100_000, 100.0)
    assert waiting == pytest.approx(1 - (500 / 60) / 100)


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


def test_extrapolating_ten_times_the_uploads_adds_the_line_s_parks_and_re_delays() -> None:
    measured = {
        "uploads": 10_000,
        "makespan_s": 1_260.0,
        "floor_s": 1_142.0,
        "makespan_over_floor": 1.1,
        "arrivals_per_s": 8.0,
        "lambda_invocations_per_upload": 1.0,
        "lambda_gb_s_per_upload": 0.5,
        "sqs_requests_per_upload": 0.2,
        "ddb_write_units_per_upload": 5.0,
        "ddb_read_units_per_upload": 0.5,
        "ddb_limiter_write_units_per_upload": 1.2,
        "s3_puts_per_upload": 1.0,
        "s3_gets_per_upload": 2.0,
        "delay_queue_hops_per_upload": 0.05,
    }
    same_rate = extrapolate(measured, 100_000, 8.0)
    assert same_rate["delay_queue_hops_per_upload"] == 0.05, "no line at 8 uploads a second"
    assert same_rate["makespan_s"] == pytest.approx(100_000 / 8.0), "the uploads take longer to arrive than the floor"
    at_once = extrapolate(measured, 100_000, None)
    _, redelays = line_waits(100_000, None)
    parks = 1.0 - 0.05
    assert at_once["delay_queue_hops_per_upload"] == pytest.approx(0.05 + parks + redelays)
    assert at_once["sqs_requests_per_upload"] == pytest.approx(
        0.2 + parks * PARK_COSTS["sqs"] + redelays * REDELAY_COSTS["sqs"]
    )
    assert at_once["ddb_write_units_per_upload"] == pytest.approx(5.0 + parks * PARK_COSTS["ddb_write_units"])
    assert at_once["floor_s"] > 199 * 60
    assert at_once["makespan_s"] == pytest.approx(at_once["floor_s"] + (1_260.0 - 1_142.0))
