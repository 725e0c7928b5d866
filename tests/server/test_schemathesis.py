"""schemathesis against a real server's /openapi.json: every REST endpoint, generated and
mutated requests, no 5xx and no answer that breaks the schema the server publishes.

The server is a real `gradscope serve` on a loopback port with its own data dir. Path
parameters named run_id are drawn from the runs that exist (a finished scalar run, a
finished tiny MNIST run that /api/predict can use, a paused run) 70% of the time, so the
fuzzer reaches past the 404. One worker slot, held by the paused run, keeps the runs the
fuzzer manages to create queued instead of training on the test machine's cores.

bench/schemathesis_long.py runs the same set-up with many more examples.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import BaseSchema, GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.failures import FailureGroup

from tests.server.conftest import Server, integrity

# Checks that judge the API by its schema. Left out: positive_data_acceptance (a schema-valid
# body may still be refused by design: an empty drawing, a config without a data set, both
# 422 with a message) and the stateful checks that need OpenAPI links.
CHECKS: list[CheckFunction] = [
    schemathesis.checks.not_a_server_error,
    schemathesis.checks.status_code_conformance,
    schemathesis.checks.content_type_conformance,
    schemathesis.checks.response_headers_conformance,
    schemathesis.checks.response_schema_conformance,
    schemathesis.checks.negative_data_rejection,
    schemathesis.checks.missing_required_header,
    schemathesis.checks.unsupported_method,
    schemathesis.checks.allow_header_conformance,
]
MAX_EXAMPLES = 8  # per operation and mode: about 700 requests (bench/schemathesis_long.py: more)
SERVER_ENV = {
    "GRADSCOPE_MAX_CONCURRENT": "1",
    "GRADSCOPE_MAX_STEPS": "5000",
    "GRADSCOPE_MAX_PARAMETERS": "50000",
    "GRADSCOPE_COMMAND_TIMEOUT": "10",
    # Landscapes and sharpness are computed on demand: small ones keep the fuzzing quick.
    "GRADSCOPE_LANDSCAPE_MAX_WORK": "200000000",
}


def seed_runs(server: Server) -> list[str]:
    """Runs for the fuzzer to find: finished scalar, finished MNIST, paused tensor."""
    scalar = server.create("micrograd-classifier")["id"]
    mnist = server.create(
        "mnist-mlp",
        dataset={"mnist_train_limit": 600},
        model={"hidden": [16]},
        epochs=None,
        steps=20,
        batch_size=64,
    )["id"]
    for rid in (scalar, mnist):
        server.wait_for(rid, lambda r: r["state"] == "finished", timeout=120)
    paused = server.create("moons", steps=5000)["id"]
    server.wait_for(paused, lambda r: r["state"] == "running")
    r = server.request("POST", f"/api/runs/{paused}/pause")
    assert r.status_code == 200, r.text
    return [scalar, mnist, paused]


def fuzz_config(run_ids: list[str]) -> schemathesis.Config:
    """Real run ids for {run_id} most of the time."""
    return schemathesis.Config.from_dict(
        {
            "dictionaries": {"runs": {"values": run_ids}},
            "parameters": {"path.run_id": {"dictionary": "runs", "probability": 0.7}},
        }
    )


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory, real_mnist: Path) -> Iterator[Server]:
    env = {"GRADSCOPE_MNIST_DIR": str(real_mnist), **SERVER_ENV}
    s = Server(tmp_path_factory.mktemp("schemathesis") / "data", env).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture(scope="module")
def run_ids(fuzz_server: Server) -> list[str]:
    return seed_runs(fuzz_server)


def fuzz(schema: BaseSchema, max_examples: int) -> tuple[int, list[str]]:
    """Every operation, schema-valid and schema-breaking requests; (cases sent, failures)."""
    sent, failures = 0, []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=max_examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],  # report, do not shrink
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def send(case: schemathesis.Case) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(checks=CHECKS, timeout=60)

            try:
                send()
            except Unsatisfiable:
                pass  # nothing schema-breaking to send (e.g. a single free-form string)
            except (FailureGroup, Exception) as e:  # the checks' findings, or a dead server
                failures.append(f"{operation.label} ({mode.value}):\n{e}")
    return sent, failures


def test_every_endpoint_answers_within_its_schema(fuzz_server: Server, run_ids: list[str]) -> None:
    schema = schemathesis.openapi.from_url(
        f"{fuzz_server.url}/openapi.json", config=fuzz_config(run_ids)
    )
    operations = [r.ok().label for r in schema.get_all_operations()]
    assert len(operations) >= 14 and "POST /api/predict" in operations
    sent, failures = fuzz(schema, MAX_EXAMPLES)
    assert not failures, "\n\n".join(failures)
    assert sent >= len(operations) * 10
    # Still serving, and the store is whole.
    assert fuzz_server.proc is not None and fuzz_server.proc.poll() is None
    assert fuzz_server.request("GET", "/api/runs").status_code == 200
    assert integrity(fuzz_server.data_dir) == "ok"
