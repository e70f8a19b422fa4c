"""The SAM CLI with its Lambda containers on the host's network: `picsart-local sam ARGS` is `sam ARGS`.

Why: the Docker daemon `make sam-local` starts has no default bridge and leaves the host's firewall alone
(`dockerd --bridge=none --iptables=false --ip-masq=false`), so a container is reachable only on the host's
network, and the local stack (moto, the Picsart emulator) listens on 127.0.0.1 only. SAM never sets a
container's network mode: `--docker-network host` is a no-op in the pinned SAM (samcli/local/docker/container.py
connects a *named* network after creating the container, and skips "host"), and upstream declined to change that.

What: one hook on the docker SDK call that SAM's `Container.create` makes (`containers.create(image, **kwargs)`),
for the containers SAM labels `sam.cli.container.type=lambda` and nothing else:
- `network_mode="host"` instead of SAM's port binding of the emulator's 8080 to 127.0.0.1:<port SAM chose>;
- the runtime interface emulator told to listen on exactly that address (`--runtime-interface-emulator-address`),
  so SAM's probe and its POST reach it, and its runtime API on a free 127.0.0.1 port (`--runtime-api-address`;
  its default, 127.0.0.1:9001, would collide between two invocations at once);
- the caller's `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>` passed to the function: SAM passes only the
  variables the template declares, and these point the function's boto3 at the local stack;
- a read-only root file system with a fresh /tmp, as in Lambda (SAM mounts only /var/task read-only, and its
  image leaves the layer's /opt writable): code that writes anywhere else fails here as it would in AWS.

It is pinned: the hook is installed only under the SAM CLI and docker SDK versions it was checked against, and
only while the source lines it relies on are still there. Anything else stops with a message saying what changed,
rather than running containers SAM cannot reach. Debug ports (`-d`) and `--container-dns` are refused: neither
means anything on the host's network.
"""

from __future__ import annotations

import inspect
import os
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

#: The versions this hook was checked against; `pyproject.toml` pins the same.
SUPPORTED_SAM_CLI: Final = "1.170.0"
SUPPORTED_DOCKER_SDK: Final = "7.2.0"
RIE: Final = "/var/rapid/aws-lambda-rie"
RIE_PORT_IN_CONTAINER: Final = "8080"
LAMBDA_LABEL: Final = "sam.cli.container.type"
#: Set by the caller: every Lambda container of the run carries it as a label, so the caller can find and remove
#: what a failed run left behind (tests/sam/conftest.py does).
RUN_LABEL: Final = "picsart.local.sam-run"
RUN_ENVIRONMENT: Final = "PICSART_SAM_RUN_ID"
#: The lines of samcli's Container.create the hook relies on: the port binding it replaces, the call it wraps.
_RELIED_ON: Final = (
    'kwargs["ports"] = {self.RAPID_PORT_CONTAINER: (self._container_host_interface, self.rapid_port_host)}',
    "self.docker_client.containers.create(self._image, **kwargs)",
    'if self.network_id and self.network_id != "host":',
)


class UnsupportedSamError(RuntimeError):
    """The installed SAM CLI or docker SDK is not the one the hook was checked against."""


def _refuse(problem: str) -> UnsupportedSamError:
    return UnsupportedSamError(
        f"picsart-local sam: {problem}. The host-network hook (picsart_local/sam_local/hostnet.py) is checked "
        f"against aws-sam-cli {SUPPORTED_SAM_CLI} and docker {SUPPORTED_DOCKER_SDK}: re-check it against the "
        "installed versions, then update its pins and pyproject.toml's."
    )


def check_supported() -> None:
    """Raise UnsupportedSamError unless SAM and the docker SDK are exactly what the hook knows."""
    import docker
    import samcli
    from docker.models.containers import ContainerCollection
    from samcli.local.docker.container import Container
    from samcli.local.docker.lambda_container import LambdaContainer

    if (samcli.__version__, docker.__version__) != (SUPPORTED_SAM_CLI, SUPPORTED_DOCKER_SDK):
        raise _refuse(f"installed are aws-sam-cli {samcli.__version__} and docker {docker.__version__}")
    source = inspect.getsource(Container.create)
    for line in _RELIED_ON:
        if line not in source:
            raise _refuse(f"samcli's Container.create no longer contains {line!r}")
    if Container.RAPID_PORT_CONTAINER != RIE_PORT_IN_CONTAINER:
        raise _refuse(f"SAM's emulator port in the container is {Container.RAPID_PORT_CONTAINER}")
    if LambdaContainer._get_default_entry_point()[0] != RIE:
        raise _refuse(f"SAM's entry point is {LambdaContainer._get_default_entry_point()!r}")
    if list(inspect.signature(ContainerCollection.create).parameters) != ["self", "image", "command", "kwargs"]:
        raise _refuse("docker's ContainerCollection.create takes other parameters")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def host_network_arguments(
    kwargs: Mapping[str, Any], environment: Mapping[str, str], runtime_api_port: int
) -> dict[str, Any]:
    """SAM's arguments for one Lambda container, rewritten for the host's network (see the module's doc)."""
    changed = dict(kwargs)
    ports = dict(changed.pop("ports", None) or {})
    binding = ports.pop(RIE_PORT_IN_CONTAINER, None)
    if binding is None:
        raise _refuse(f"SAM binds no port {RIE_PORT_IN_CONTAINER} for the emulator: {kwargs.get('ports')!r}")
    if ports:
        raise UnsupportedSamError(
            f"picsart-local sam: ports {sorted(ports)} cannot be published on the host's network (debug ports, -d, "
            "are not supported here)"
        )
    if changed.get("dns"):
        raise UnsupportedSamError("picsart-local sam: --container-dns does not apply on the host's network")
    interface, host_port = binding
    entrypoint = list(changed.get("entrypoint") or [])
    if not entrypoint or entrypoint[0] != RIE:
        raise _refuse(f"SAM starts the container with {entrypoint!r}, not the emulator")
    entrypoint[1:1] = [
        "--runtime-interface-emulator-address",
        f"{interface}:{host_port}",
        "--runtime-api-address",
        f"127.0.0.1:{runtime_api_port}",
    ]
    changed["entrypoint"] = entrypoint
    changed["network_mode"] = "host"
    changed["read_only"] = True
    changed["tmpfs"] = {**(changed.get("tmpfs") or {}), "/tmp": "rw,exec,size=512m"}  # noqa: S108 -- Lambda's /tmp
    passed = dict(changed.get("environment") or {})
    for name, value in environment.items():
        if name == "AWS_ENDPOINT_URL" or name.startswith("AWS_ENDPOINT_URL_"):
            passed.setdefault(name, value)
    changed["environment"] = passed
    run_id = environment.get(RUN_ENVIRONMENT)
    if run_id:
        changed["labels"] = {**(changed.get("labels") or {}), RUN_LABEL: run_id}
    return changed


_installed = False


def install() -> None:
    """Hook docker's ContainerCollection.create for SAM's Lambda containers (once; checks the pins first)."""
    global _installed
    if _installed:
        return
    check_supported()
    from docker.models.containers import ContainerCollection

    original: Callable[..., Any] = ContainerCollection.create

    def create(self: ContainerCollection, image: str, command: Any = None, **kwargs: Any) -> Any:
        if (kwargs.get("labels") or {}).get(LAMBDA_LABEL) == "lambda":
            kwargs = host_network_arguments(kwargs, os.environ, free_port())
        return original(self, image, command, **kwargs)

    ContainerCollection.create = create
    _installed = True


def run_sam(argv: Sequence[str]) -> int:
    """`sam ARGV` in this process with the hook installed; SAM's exit code."""
    os.environ.setdefault("SAM_CLI_TELEMETRY", "0")
    try:
        install()
    except UnsupportedSamError as error:
        print(error, file=sys.stderr)
        return 2
    from samcli.cli.main import cli

    try:
        cli.main(args=list(argv), prog_name="sam")
    except SystemExit as stop:
        return stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
    return 0


def main() -> None:
    sys.exit(run_sam(sys.argv[1:]))


if __name__ == "__main__":
    main()
