"""`picsart-local sam`: the host-network hook's rewrite of SAM's Lambda containers, its pins, and what it refuses."""

from __future__ import annotations

import pytest

from picsart_local.cli import main
from picsart_local.sam_local import hostnet

SAM_KWARGS = {
    "command": [],
    "working_dir": "/var/task",
    "volumes": {"/build/UploadFunction": {"bind": "/var/task", "mode": "ro,delegated"}},
    "tty": False,
    "use_config_proxy": True,
    "environment": {"AWS_SAM_LOCAL": "true", "OUTPUT_BUCKET": "out"},
    "ports": {"8080": ("127.0.0.1", 5123)},
    "entrypoint": ["/var/rapid/aws-lambda-rie", "--log-level", "error"],
    "mem_limit": "512m",
    "labels": {"sam.cli.container.type": "lambda", "sam.cli.function.name": "UploadFunction"},
}


def test_the_hook_supports_the_installed_sam_cli_and_docker_sdk() -> None:
    hostnet.check_supported()


def test_a_lambda_container_joins_the_host_network_with_the_emulator_where_sam_looks() -> None:
    environment = {"AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1", "X": "1"}
    changed = hostnet.host_network_arguments(SAM_KWARGS, {**environment, hostnet.RUN_ENVIRONMENT: "run-1"}, 40123)

    assert changed["network_mode"] == "host"
    assert "ports" not in changed
    assert changed["read_only"] is True
    assert set(changed["tmpfs"]) == {"/tmp"}
    assert changed["entrypoint"] == [
        "/var/rapid/aws-lambda-rie",
        "--runtime-interface-emulator-address",
        "127.0.0.1:5123",
        "--runtime-api-address",
        "127.0.0.1:40123",
        "--log-level",
        "error",
    ]
    assert changed["environment"] == {
        "AWS_SAM_LOCAL": "true",
        "OUTPUT_BUCKET": "out",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:4566",
        "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
    }
    assert changed["labels"][hostnet.RUN_LABEL] == "run-1"
    # Everything else is SAM's, unchanged.
    mine = ("entrypoint", "environment", "labels", "network_mode", "read_only", "tmpfs")
    assert {k: v for k, v in changed.items() if k not in mine} == {
        k: v for k, v in SAM_KWARGS.items() if k not in ("ports", "entrypoint", "environment", "labels")
    }


def test_a_declared_endpoint_is_not_overridden() -> None:
    kwargs = {**SAM_KWARGS, "environment": {"AWS_ENDPOINT_URL": "http://declared"}}
    changed = hostnet.host_network_arguments(kwargs, {"AWS_ENDPOINT_URL": "http://caller"}, 1)
    assert changed["environment"]["AWS_ENDPOINT_URL"] == "http://declared"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ports": {"8080": ("127.0.0.1", 5123), "5858": ("127.0.0.1", 5858)}}, "debug ports"),
        ({"dns": ["1.1.1.1"]}, "--container-dns"),
        ({"ports": {}}, "binds no port 8080"),
        ({"entrypoint": ["/lambda-entrypoint.sh"]}, "not the emulator"),
    ],
)
def test_what_the_host_network_cannot_do_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(hostnet.UnsupportedSamError, match=message):
        hostnet.host_network_arguments({**SAM_KWARGS, **change}, {}, 1)


def test_another_sam_version_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import samcli

    monkeypatch.setattr(samcli, "__version__", "9.9.9")
    with pytest.raises(hostnet.UnsupportedSamError, match=r"aws-sam-cli 9\.9\.9"):
        hostnet.check_supported()


def test_picsart_local_sam_is_the_sam_cli_with_the_hook(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from docker.models.containers import ContainerCollection

    # Undone after the test: the hook stays out of this process's other tests.
    monkeypatch.setattr(ContainerCollection, "create", ContainerCollection.create)
    monkeypatch.setattr(hostnet, "_installed", False)
    original = ContainerCollection.create

    assert main(["sam", "--version"]) == 0
    assert hostnet.SUPPORTED_SAM_CLI in capsys.readouterr().out
    assert ContainerCollection.create is not original
