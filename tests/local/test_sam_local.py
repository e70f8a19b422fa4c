"""`make sam-local` and `picsart-local sam-invoke` without Docker: the stand-in image's files and its Debian mirror,
what a machine without Docker is told, and the environment SAM gets from the local stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from picsart_local.sam_local import base_image, prepare
from picsart_local.sam_local.invoke import env_vars_document
from picsart_local.stack import LocalStack

# --------------------------------------------------------------------------------------- the stand-in


def test_the_mirror_is_read_from_apt_deb822(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n\nTypes: deb\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n"
    )
    assert base_image.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_the_mirror_is_read_from_a_one_line_sources_list(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://old.example/debian buster main\n"
        "deb [signed-by=/k.gpg] http://mirror.example/debian-security bookworm-security main\n"
        "deb http://mirror.example/debian bookworm main\n"
    )
    assert base_image.debian_mirror(tmp_path) == "http://mirror.example/debian"


def test_no_mirror_leaves_debootstrap_its_default(tmp_path: Path) -> None:
    assert base_image.debian_mirror(tmp_path) is None
    command = base_image.debootstrap_command(tmp_path / "root", "x86_64", None)
    assert command == [
        "debootstrap",
        "--variant=minbase",
        "--arch=amd64",
        "--include=python3.13,ca-certificates",
        "trixie",
        str(tmp_path / "root"),
    ]
    assert base_image.debootstrap_command(tmp_path, "arm64", "http://m")[-1] == "http://m"


def test_the_runtime_files_are_the_official_images(tmp_path: Path) -> None:
    base_image.write_runtime_files(tmp_path)
    bootstrap = tmp_path / "var" / "runtime" / "bootstrap"
    assert os.access(bootstrap, os.X_OK)
    assert "exec /var/lang/bin/python3.13 /var/runtime/bootstrap.py" in bootstrap.read_text()
    assert os.access(tmp_path / "lambda-entrypoint.sh", os.X_OK)
    assert os.readlink(tmp_path / "var" / "lang" / "bin" / "python3.13") == "/usr/bin/python3.13"
    for folder in ("var/task", "opt", "var/rapid"):
        assert (tmp_path / folder).is_dir()
    compile((tmp_path / "var" / "runtime" / "bootstrap.py").read_text(), "bootstrap.py", "exec")


def test_the_stand_in_is_tagged_by_its_recipe() -> None:
    assert base_image.image_name("x86_64") == "public.ecr.aws/lambda/python:3.13-x86_64"
    assert base_image.standin_tag("x86_64") != base_image.standin_tag("arm64")
    assert base_image.standin_tag("x86_64") == base_image.standin_tag("x86_64")
    assert base_image.standin_tag("x86_64").startswith("picsart-local/lambda-python-standin:x86_64-")


def test_sam_gets_the_declared_variables_as_the_local_stack_sets_them(repository_root: Path) -> None:
    with LocalStack(template_path=repository_root / "template.yaml", stack_name="sam-env-vars") as stack:
        document = env_vars_document(stack)
        assert set(document) == {"UploadFunction", "RetryFunction", "BalanceFunction"}
        upload = document["UploadFunction"]
        assert set(upload) == set(stack.template.function("UploadFunction").environment)
        assert upload["OUTPUT_BUCKET"] == stack.outputs["OutputBucketName"]
        assert upload["DELAY_QUEUE_URL"].startswith(stack.endpoint_url)


# ------------------------------------------------------------------------------------- make sam-local


@pytest.fixture
def no_docker_and_not_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no Docker daemon, no dockerd, and a user who is not root."""
    monkeypatch.setattr(prepare, "connect", lambda timeout_s=10.0: None)
    monkeypatch.setattr(prepare, "_is_root", lambda: False)
    monkeypatch.setattr(prepare.shutil, "which", lambda name: None)
    monkeypatch.delenv("DOCKER_HOST", raising=False)


def test_a_machine_that_cannot_have_docker_is_told_why_and_not_failed(
    no_docker_and_not_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    printed: list[str] = []
    assert prepare.prepare("x86_64", echo=printed.append) == 0
    assert "docker.io missing, and installing needs root and apt-get" in printed[-1]
    assert "tests/sam/ will be skipped" in printed[-1]
    assert prepare.readiness("x86_64") is not None


def test_on_ci_a_machine_that_cannot_have_docker_fails(
    no_docker_and_not_root: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    printed: list[str] = []
    assert prepare.prepare("x86_64", echo=printed.append) == 1
    assert "cannot prepare Docker on CI" in printed[-1]


class FakeImages:
    """The part of docker's image collection that ensure_base_image uses."""

    def __init__(self, tags: list[str] | None, pull_error: Exception | None = None) -> None:
        self.tags, self.pull_error, self.pulled = tags, pull_error, False

    def get(self, name: str) -> object:
        from docker.errors import ImageNotFound

        if self.tags is None:
            raise ImageNotFound(name)
        return type("Image", (), {"tags": self.tags})()

    def pull(self, name: str) -> None:
        self.pulled = True
        if self.pull_error is not None:
            raise self.pull_error


def ensure(images: FakeImages, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What ensure_base_image did: 'pulled' and/or 'built'."""
    built: list[str] = []
    monkeypatch.setattr(prepare, "build_standin", lambda *args: built.append("built"))
    client = type("Client", (), {"images": images})()
    prepare.ensure_base_image(client, "x86_64", lambda line: None, [])
    return (["pulled"] if images.pulled else []) + built


def test_an_official_image_present_is_used_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    images = FakeImages([base_image.image_name("x86_64")])
    assert ensure(images, monkeypatch) == []


def test_the_current_stand_in_is_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    images = FakeImages([base_image.image_name("x86_64"), base_image.standin_tag("x86_64")])
    assert ensure(images, monkeypatch) == []


def test_a_missing_image_is_pulled_when_the_registry_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ensure(FakeImages(None), monkeypatch) == ["pulled"]


def test_a_stand_in_is_built_when_the_registry_cannot_be_reached(monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.errors import APIError

    assert ensure(FakeImages(None, APIError("no such host")), monkeypatch) == ["pulled", "built"]


def test_an_older_stand_in_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    from docker.errors import APIError

    older = FakeImages([base_image.image_name("x86_64"), f"{base_image.STANDIN_REPOSITORY}:x86_64-0123456789ab"])
    older.pull_error = APIError("no such host")
    assert ensure(older, monkeypatch) == ["pulled", "built"]
