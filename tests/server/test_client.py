"""The logging client against a real server that needs a token: 10,000 steps from a plain
loop, an epoch's figures, a failing script's run failed; no token, no run; and `gradscope
sweep` from the command line (its --ray: test_ray.py)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gradscope.server.cli import main
from gradscope.server.client import ClientError, Run
from tests.server.conftest import Server

TOKEN = "client-test-token-0123456789"


class TokenServer(Server):
    """A server that needs a token: up once it answers at all (a 401 without one)."""

    def ready(self, response: httpx.Response) -> bool:
        return True


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    env = {
        "GRADSCOPE_MNIST_DIR": str(real_mnist),
        "GRADSCOPE_MAX_CONCURRENT": "2",
        "GRADSCOPE_TOKEN": TOKEN,
    }
    s = TokenServer(tmp_path_factory.mktemp("client") / "data", env).start()
    try:
        yield s
    finally:
        s.stop()


def get(server: Server, path: str) -> dict:
    r = server.request("GET", path, headers={"authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_plain_loop_logs_ten_thousand_steps(server: Server) -> None:
    with Run(name="plain loop", config={"lr": 0.1}, url=server.url, token=TOKEN) as run:
        for step in range(1, 10_001):
            run.log({"train_loss": 1.0 / step}, step=step)
        run.log({"test_loss": 0.25, "test_acc": 0.9}, step=10_000, epoch=1)
        run.log({"train_loss": math.nan})  # step 10,001: NaN is a value, not an error
    record = get(server, f"/api/runs/{run.id}")
    assert (record["state"], record["source"], record["step"]) == ("finished", "external", 10_001)
    assert record["summary"]["test_acc"]["final"] == 0.9
    series = get(server, f"/api/runs/{run.id}/metrics")["series"]
    loss = series["train_loss"]
    assert loss["step"] == list(range(1, 10_002))
    assert loss["value"][:-1] == [1.0 / s for s in range(1, 10_001)]
    assert loss["value"][-1] == "nan"
    assert series["test_loss"]["step"] == [10_000]


def test_a_failing_script_fails_its_run_with_the_error(server: Server) -> None:
    with pytest.raises(ZeroDivisionError), Run(url=server.url, token=TOKEN) as run:
        run.log({"train_loss": 0.5})
        run.log({"train_loss": 1 / 0})
    record = get(server, f"/api/runs/{run.id}")
    assert record["state"] == "failed" and "ZeroDivisionError" in record["error"]
    assert record["step"] == 1  # what was logged before the error was sent


def test_without_the_token_the_client_is_refused(server: Server) -> None:
    with pytest.raises(ClientError) as refused:
        Run(url=server.url, token=None)
    assert refused.value.status == 401


def test_gradscope_sweep_runs_a_grid_on_the_server_and_names_the_best(
    server: Server, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["sweep", "--url", server.url, "--token", TOKEN, "--preset", "xor", "--name", "cli"]
    args += ["--set", "steps=5", "--set", "pace=null", "--grid", "optimizer.lr=0.05,0.2"]
    assert main([*args, "--wait"]) == 0
    out = capsys.readouterr().out
    sweep_id = out.split()[1].rstrip(":")
    assert f"{server.url}/sweeps/{sweep_id}" in out
    sweep = get(server, f"/api/sweeps/{sweep_id}")
    assert sorted(r["name"] for r in sweep["runs"]) == ["cli lr=0.05", "cli lr=0.2"]
    assert sweep["counts"] == {"finished": 2}
    best = next(r for r in sweep["runs"] if r["id"] == sweep["best_run"])
    assert f"best run: {best['name']} ({best['id']})" in out
    bad = ["sweep", "--url", server.url, "--token", TOKEN, "--grid", "optimizer.lrr=0.1"]
    assert main([*bad, "--preset", "xor"]) == 2
    assert "space.optimizer.lrr" in capsys.readouterr().err
