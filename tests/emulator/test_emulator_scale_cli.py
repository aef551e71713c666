"""The CLI entry and the 100k-request scale check (peak RSS of a real `batchline emulator`)."""

from __future__ import annotations

import argparse

import pytest
from emulator_scale import measure

from batchline.emulator.server import add_arguments, config_from_args


def test_cli_flags_map_to_config() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--port", "0", "--processing-seconds", "5:50", "--clock-speed", "3600", "--seed", "3",
            "--error-rate", "overloaded_error=0.05", "--error-rate", "api_error=0.01",
            "--expire-rate", "0.01", "--http-429-rate", "0.1", "--http-529-rate", "0.2",
            "--http-500-rate", "0.3", "--fresh-404-seconds", "30", "--results-cut-after", "10",
            "--rpm-limit", "50", "--queue-limit", "1000", "--crlf", "--max-body-bytes", "1000",
            "--fault-operations", "create,results", "--spend-limit-reached",
        ]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.processing_range == (5.0, 50.0) and cfg.clock_speed == 3600 and cfg.seed == 3
    assert cfg.error_rates == {"overloaded_error": 0.05, "api_error": 0.01}
    assert (cfg.http_429_rate, cfg.http_529_rate, cfg.http_500_rate) == (0.1, 0.2, 0.3)
    assert cfg.fresh_404_seconds == 30 and cfg.results_cut_after == 10
    assert cfg.rpm_limit == 50 and cfg.queue_limit == 1000 and cfg.crlf and cfg.max_body_bytes == 1000
    assert cfg.fault_operations == ("create", "results") and cfg.spend_limit_reached


@pytest.mark.slow
def test_100k_create_and_results_stay_small() -> None:
    figures = measure(100_000, 1_000)
    assert figures["result_lines"] == 100_000
    assert figures["body_mb"] > 100
    assert figures["peak_rss_mb"] < 1024, figures
