"""The real `sam build` and `sam local invoke` in Docker, against the local stack on 127.0.0.1.

What `sam build` produces (the handlers, the layer in /opt, python3.13, a read-only /var/task) starts and works in a
Lambda-like container: the application is built once per session (x86_64 on an x86_64 machine, never cached), each
module starts its own local stack (moto server and the Picsart emulator), and each invocation goes through
`picsart-local sam`'s host-network hook exactly as `picsart-local sam-invoke` runs it.

`make sam-local` (a prerequisite of `make test`) prepares Docker and the Lambda image. Where it cannot (not root, no
apt-get) these tests skip with its reason; on CI (CI=true) they fail instead, so they never skip there.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from itertools import count
from pathlib import Path
from typing import Any

import pytest
from docker.errors import APIError

from picsart_local.environment import LocalEnvironment, LocalOptions
from picsart_local.sam_local.base_image import host_architecture
from picsart_local.sam_local.hostnet import RUN_LABEL
from picsart_local.sam_local.invoke import SamInvocation, build, env_vars_document, invoke
from picsart_local.sam_local.prepare import connect, on_ci, readiness

ARCHITECTURE = host_architecture()
SamInvoke = Callable[[LocalEnvironment, str, Any], SamInvocation]


@pytest.fixture(scope="session")
def sam_ready() -> None:
    reason = readiness(ARCHITECTURE)
    if reason is None:
        return
    if on_ci():
        pytest.fail(f"tests/sam/ must run on CI, and cannot: {reason}", pytrace=False)
    pytest.skip(f"sam local invoke cannot run here: {reason}")


@pytest.fixture(scope="session")
def built_template(sam_ready: None, repository_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`sam build --no-cached` of the application for this machine's architecture, once."""
    build_dir = tmp_path_factory.mktemp("sam-build") / "build"
    return build(repository_root / "template.yaml", build_dir, ARCHITECTURE, cached=False)


@pytest.fixture(scope="session")
def sam_invoke(built_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SamInvoke]:
    """`sam local invoke FUNCTION` with an event, against a running local environment.

    Every container of the session carries one run label; whatever SAM leaves behind is removed at the end, and so
    are the images SAM's rebuilds of its `samcli/lambda-...` image left untagged during the session.
    """
    folder = tmp_path_factory.mktemp("sam-invoke")
    run_id = uuid.uuid4().hex
    numbers = count(1)
    untagged_before = untagged_images()

    def run(env: LocalEnvironment, function: str, event: Any) -> SamInvocation:
        assert env.stack is not None
        number = next(numbers)
        event_path, env_vars = folder / f"event-{number}.json", folder / f"env-vars-{number}.json"
        event_path.write_text(json.dumps(event))
        env_vars.write_text(json.dumps(env_vars_document(env.stack, [function])))
        return invoke(built_template, function, event_path, env_vars, env.stack, ARCHITECTURE, run_id=run_id)

    yield run
    client = connect()
    if client is not None:
        for container in client.containers.list(all=True, filters={"label": f"{RUN_LABEL}={run_id}"}):
            container.remove(force=True)
        for image_id in untagged_images() - untagged_before:
            with contextlib.suppress(APIError):  # still used by another image or container: left
                client.images.remove(image_id)
        client.close()


def untagged_images() -> set[str]:
    client = connect()
    if client is None:
        return set()
    try:
        return {image.id for image in client.images.list(filters={"dangling": True})}
    finally:
        client.close()


def start_environment(
    tmp_path_factory: pytest.TempPathFactory, name: str, parameters: dict[str, str] | None = None
) -> LocalEnvironment:
    options = LocalOptions(
        stack_name=f"sam-{name}",
        parameters=parameters or {},
        log_dir=tmp_path_factory.mktemp(f"sam-{name}-logs"),
        event_sources=False,
    )
    return LocalEnvironment(options).start()


@pytest.fixture(scope="module")
def env(sam_ready: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalEnvironment]:
    environment = start_environment(tmp_path_factory, "removebg")
    yield environment
    environment.stop()


def json_log_lines(text: str) -> list[dict[str, Any]]:
    """The structured (Powertools) log lines among SAM's and the function's output."""
    found = []
    for line in text.splitlines():
        start = line.find("{")
        if start < 0:
            continue
        try:
            document = json.loads(line[start:])
        except json.JSONDecodeError:
            continue
        if isinstance(document, dict):
            found.append(document)
    return found
