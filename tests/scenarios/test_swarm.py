"""``mobile-stub swarm`` against a real server: a small, short load reports what happened, and refuses to be
pointed anywhere but this machine or past its bounds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mallfence.cli import import_file
from mallfence.config import Settings
from mallfence.server import BackgroundServer
from mobile_stub.cli import main as stub_main
from mobile_stub.load import Progress, run_swarm
from mobile_stub.swarm import StubError

MALL = Path(__file__).parents[2] / "zones" / "harbourside-mall.geojson"

pytestmark = pytest.mark.scenario


def _fixes_on_server(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "mallfence_fixes_total")


@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_small_swarm_reports_events_and_latencies(settings: Settings, platform_key: str, transport: str) -> None:
    if settings.database_url.startswith("postgresql") and transport == "http":
        pytest.skip("one transport is enough on PostgreSQL: the swarm is the subject here, not the database")
    import_file(settings, MALL, None)
    progress: list[Progress] = []
    with BackgroundServer(settings) as url:
        before = _fixes_on_server(url)
        report = asyncio.run(run_swarm(url, "harbourside", shoppers=20, rate=2.0, duration_s=5.0,
                                       transport=transport, batch=4, api_key=platform_key,
                                       on_progress=progress.append))
        after = _fixes_on_server(url)
    assert report.registered == 20 and report.failed == 0, report.format()
    assert not report.errors, report.format()
    assert report.fixes_sent > 20 * 2 * 2  # everyone sent for a good part of the 5 s
    assert report.fixes_accepted == report.fixes_sent
    assert after - before == report.fixes_sent  # the server saw every fix the swarm says it sent
    assert report.events > 0 and report.latencies > 0
    assert 0 <= report.p50_ms <= report.p90_ms <= report.p99_ms <= report.max_ms  # type: ignore[operator]
    # events after the crowd's arrival are a subset: counted apart, their percentiles within the whole run's
    assert 0 < report.steady_latencies <= report.latencies and report.warmup_s > 0
    assert report.steady_p99_ms <= report.max_ms  # type: ignore[operator]
    assert report.throughput > 0
    assert progress and progress[-1].sent <= report.fixes_sent and "shoppers" in progress[-1].line()
    text = report.format()
    assert "p99" in text and f"{report.fixes_sent} sent" in text


@pytest.mark.parametrize("server", ["http://10.0.0.7:8000", "http://example.com", "ftp://127.0.0.1:8000"])
def test_the_swarm_refuses_other_hosts(server: str) -> None:
    with pytest.raises(StubError, match="this machine only"):
        asyncio.run(run_swarm(server, "harbourside", shoppers=1, duration_s=1))


@pytest.mark.parametrize(("shoppers", "rate", "duration"), [(2001, 1, 1), (10, 11, 1), (10, 1, 601), (2000, 10, 600)])
def test_the_swarm_is_bounded(shoppers: int, rate: float, duration: float) -> None:
    with pytest.raises(StubError):
        asyncio.run(run_swarm("http://127.0.0.1:9", "harbourside", shoppers=shoppers, rate=rate, duration_s=duration))


def test_the_command_says_why_it_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert stub_main(["swarm", "--server", "http://192.0.2.1:8000", "--venue", "x"]) == 2
    assert "this machine only" in capsys.readouterr().err
