"""`picsart-local plan`: the dry run of one upload under a rules file (the rule, the steps as sent, the output
keys, the Picsart calls), built without calling anything, and its command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from picsart_adapter.rules import Rules, parse_rules
from picsart_local.cli import main
from picsart_local.plan import (
    FROM_THE_ANSWER,
    NO_RULE_MATCHES,
    build_plan,
    default_rules_path,
    guess_content_type,
    parse_metadata,
    render_plan,
)

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
#: The repository's example rules (docs/rules.md), here so the tests do not depend on where the file lives.
EXAMPLE_TEXT = """
{
  "rules": [
    {"name": "products", "match": {"prefix": "products/", "content_type": ["image/jpeg", "image/png", "image/webp"]},
     "pipelines": ["cutout-white"], "on_failure": "copy-original"},
    {"name": "tagged-products", "match": {"metadata": {"picsart-pipeline": "product"}}, "pipelines": ["cutout-white"]},
    {"name": "avatars", "match": {"prefix": "avatars/", "size": {"max": 10485760}},
     "pipelines": [{"name": "face", "steps": [{"tool": "enhance-face", "parameters": {"format": "JPG"}}],
                    "output": "avatars-enhanced/{dir}{stem}.{ext}"}]},
    {"name": "everything-else", "match": {}, "pipelines": ["thumbnail", "tags"]}
  ],
  "pipelines": {
    "cutout-white": {"steps": [{"tool": "removebg", "parameters": {"bg_color": "#ffffff", "format": "JPG"}},
                               {"tool": "upscale", "parameters": {"upscale_factor": 2, "format": "JPG"}}],
                     "output": "products-white/{dir}{stem}.{ext}"},
    "thumbnail": {"steps": [{"tool": "edit", "parameters": {"mode": "resize", "width": 320, "format": "WEBP"}}],
                  "output": "thumbnails/{dir}{stem}.{ext}"},
    "tags": {"steps": [{"tool": "tags"}]}
  }
}
"""
EXAMPLE = parse_rules(EXAMPLE_TEXT, source="example")


def without_catch_all() -> Rules:
    document = json.loads(EXAMPLE_TEXT)
    document["rules"] = [rule for rule in document["rules"] if rule["match"]]
    return parse_rules(json.dumps(document))


def one_pipeline(steps: list[dict[str, Any]], output: str | None = None) -> Rules:
    pipeline: dict[str, Any] = {"steps": steps} | ({"output": output} if output else {})
    return parse_rules(json.dumps({"rules": [{"name": "all", "pipelines": ["p"]}], "pipelines": {"p": pipeline}}))


@pytest.fixture
def example_file(tmp_path: Path) -> Path:
    path = tmp_path / "rules.json"
    path.write_text(EXAMPLE_TEXT, encoding="utf-8")
    return path


# The plan


def test_a_product_matches_products_with_two_steps_as_sent_and_its_output_key() -> None:
    plan = build_plan(EXAMPLE, "products/x.jpg")
    assert plan.rule == "products"
    assert plan.on_failure == "copy-original"
    assert plan.content_type == "image/jpeg"
    assert plan.content_type_guessed
    (pipeline,) = plan.pipelines
    assert pipeline.name == "cutout-white"
    assert [step.tool for step in pipeline.steps] == ["removebg", "upscale"]
    assert [step.endpoint for step in pipeline.steps] == ["POST /removebg", "POST /upscale"]
    # As sent: form fields are strings, so the factor is "2".
    assert pipeline.steps[0].parameters == {"bg_color": "#ffffff", "format": "JPG"}
    assert pipeline.steps[1].parameters == {"upscale_factor": "2", "format": "JPG"}
    assert pipeline.steps[0].image_url == "the upload, presigned"
    assert pipeline.steps[1].image_url == "step 1's result"
    # The template is products-white/{dir}{stem}.{ext}: the source's folder stays in the key.
    assert pipeline.output_key == "products-white/products/x.jpg"
    assert (plan.calls, plan.polls, plan.calls_text) == (2, False, "2 calls")
    assert plan.skipped is None


def test_product_metadata_matches_tagged_products_in_any_key_case() -> None:
    assert build_plan(EXAMPLE, "uploads/y.png", metadata={"picsart-pipeline": "product"}).rule == "tagged-products"
    given = {"X-Amz-Meta-Picsart-Pipeline": "product"}
    plan = build_plan(EXAMPLE, "uploads/y.png", metadata=given)
    assert plan.rule == "tagged-products"
    assert plan.pipelines[0].output_key == "products-white/uploads/y.jpg"
    other = build_plan(EXAMPLE, "uploads/y.png", metadata={"picsart-pipeline": "avatar"})
    assert other.rule == "everything-else"


def test_any_other_image_matches_the_catch_all_with_a_thumbnail_and_its_tags() -> None:
    plan = build_plan(EXAMPLE, "random/IMG.Jpg")
    assert plan.rule == "everything-else"
    assert plan.content_type == "image/jpeg"
    thumbnail, tags = plan.pipelines
    assert (thumbnail.name, thumbnail.output_key) == ("thumbnail", "thumbnails/random/IMG.webp")
    assert thumbnail.steps[0].parameters == {"format": "WEBP", "mode": "resize", "width": "320"}
    # No template: today's keys, the source key with the JSON's extension added.
    assert (tags.name, tags.output_key) == ("tags", "tags/random/IMG.Jpg.json")
    assert "JSON" in tags.output
    assert plan.calls == 2


def test_an_upload_no_rule_matches_is_skipped_at_no_cost() -> None:
    plan = build_plan(without_catch_all(), "random/IMG.Jpg")
    assert plan.skipped == NO_RULE_MATCHES
    assert plan.rule is None
    assert plan.pipelines == ()
    assert plan.calls == 0
    assert "skipped: no rule matches" in render_plan(plan)


def test_the_given_content_type_and_size_decide_the_match() -> None:
    # A TIFF under products/ is not a product (the rule takes JPEG, PNG and WEBP).
    assert build_plan(EXAMPLE, "products/x.jpg", content_type="image/TIFF").rule == "everything-else"
    assert build_plan(EXAMPLE, "avatars/me.jpg", size=10485760).rule == "avatars"
    assert build_plan(EXAMPLE, "avatars/me.jpg", size=10485761).rule == "everything-else"
    face = build_plan(EXAMPLE, "avatars/me.jpg").pipelines[0]
    assert face.output_key == "avatars-enhanced/avatars/me.jpg"


@pytest.mark.parametrize(
    ("key", "size", "content_type", "reason"),
    [
        ("notes.txt", 1000, None, "not a JPG, PNG, WEBP, TIFF or HEIC image"),
        ("empty.png", 0, None, "the object is empty (0 bytes)"),
        ("huge.png", 100 * 1024 * 1024 + 1, None, "over Picsart's limit"),
        ("named.png", 1000, "image/gif", "not a JPG, PNG, WEBP, TIFF or HEIC image"),
    ],
)
def test_an_upload_the_input_checks_refuse_is_skipped_before_any_rule(
    key: str, size: int, content_type: str | None, reason: str
) -> None:
    plan = build_plan(EXAMPLE, key, size=size, content_type=content_type)
    assert plan.skipped is not None
    assert reason in plan.skipped
    assert (plan.rule, plan.calls) == (None, 0)


def test_an_asynchronous_step_costs_polls_and_a_final_data_step_is_a_json_sidecar() -> None:
    plan = build_plan(one_pipeline([{"tool": "ultra-upscale"}, {"tool": "tags"}]), "a/b.png")
    (pipeline,) = plan.pipelines
    assert [step.asynchronous for step in pipeline.steps] == [True, False]
    assert (pipeline.calls, pipeline.polls) == (2, True)
    assert plan.calls_text == "2 calls + polls"
    # The image is the output (the last image step's format), the tags beside it.
    assert pipeline.output_key == "p/a/b.png.jpg"
    assert "JSON sidecar" in pipeline.output
    text = render_plan(plan)
    assert "Picsart calls per upload: 2 calls + polls" in text
    assert "asynchronous: its result is polled" in text


def test_an_output_whose_format_the_answer_tells_says_so_in_its_key() -> None:
    plan = build_plan(one_pipeline([{"tool": "vectorizer"}], output="vectors/{stem}.{ext}"), "a/b.png")
    assert plan.pipelines[0].output_key == f"vectors/b.{FROM_THE_ANSWER}"


def test_the_version_goes_into_the_key_as_its_id() -> None:
    rules = one_pipeline([{"tool": "removebg"}], output="{version}/{stem}.{ext}")
    assert build_plan(rules, "a/b.jpg", version_ref="version:abc").pipelines[0].output_key == "abc/b.png"
    assert build_plan(rules, "a/b.jpg", version_ref='etag:"e1"').pipelines[0].output_key == "e1/b.png"
    assert build_plan(rules, "a/b.jpg").pipelines[0].output_key == "VERSION/b.png"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("a.JPG", "image/jpeg"),
        ("a.jpeg", "image/jpeg"),
        ("a.mpo", "image/jpeg"),
        ("a.png", "image/png"),
        ("a.webp", "image/webp"),
        ("a.tif", "image/tiff"),
        ("a.TIFF", "image/tiff"),
        ("a.heic", "image/heic"),
        ("a.gif", None),
        ("folder.png/noextension", None),
    ],
)
def test_the_content_type_is_guessed_from_the_extension_among_the_sniffed_types(key: str, expected: str | None) -> None:
    assert guess_content_type(key) == expected


def test_metadata_pairs_keep_an_equals_sign_in_the_value() -> None:
    assert parse_metadata(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_metadata(["novalue"])
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_metadata(["=value"])


def test_the_default_rules_are_the_layers_example(tmp_path: Path) -> None:
    assert default_rules_path(tmp_path) == tmp_path / "layers" / "picsart_adapter" / "rules" / "example.json"


# The command line


def test_plan_prints_the_rule_steps_output_key_and_calls(
    example_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "products/x.jpg", "--rules", str(example_file)]) == 0
    printed = capsys.readouterr().out
    assert f"rules: {example_file}" in printed
    assert "rule: products (on failure: copy-original)" in printed
    assert '2. upscale: POST /upscale {"format": "JPG", "upscale_factor": "2"}' in printed
    assert "output: products-white/products/x.jpg" in printed
    assert "Picsart calls per upload: 2 calls" in printed


def test_plan_reads_the_repositorys_example_rules_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "random/IMG.Jpg"]) == 0
    printed = capsys.readouterr().out
    assert f"rules: {default_rules_path(REPOSITORY_ROOT)}" in printed
    assert "rule: everything-else" in printed


def test_plan_as_json_with_metadata_and_a_version(example_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    arguments = ["plan", "in/y.webp", "--rules", str(example_file), "--json", "--version", "version:v7"]
    code = main([*arguments, "--size", "2048", "--metadata", "Picsart-Pipeline=product", "other=1"])
    assert code == 0
    document = json.loads(capsys.readouterr().out)
    assert document["rules"] == str(example_file)
    assert (document["rule"], document["size"], document["version_ref"]) == ("tagged-products", 2048, "version:v7")
    assert document["metadata"] == {"Picsart-Pipeline": "product", "other": "1"}
    assert document["pipelines"][0]["output_key"] == "products-white/in/y.jpg"
    assert [step["tool"] for step in document["pipelines"][0]["steps"]] == ["removebg", "upscale"]
    assert (document["calls"], document["calls_text"]) == (2, "2 calls")


def test_plan_of_an_upload_no_rule_matches_says_skipped_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "no-catch-all.json"
    document = json.loads(EXAMPLE_TEXT)
    document["rules"] = document["rules"][:-1]
    rules.write_text(json.dumps(document), encoding="utf-8")
    assert main(["plan", "random/IMG.Jpg", "--rules", str(rules)]) == 0
    printed = capsys.readouterr().out
    assert "skipped: no rule matches" in printed
    assert "Picsart calls: 0 calls" in printed


def test_plan_with_a_broken_rules_file_names_the_step_and_field_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    document = json.loads(EXAMPLE_TEXT)
    document["pipelines"]["thumbnail"]["steps"][0]["parameters"]["width"] = "wide"
    broken.write_text(json.dumps(document), encoding="utf-8")
    assert main(["plan", "random/IMG.Jpg", "--rules", str(broken)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{broken} is not a valid rules file (1 error)" in captured.err
    assert 'rule "everything-else", pipeline "thumbnail", step 1 (edit): width' in captured.err


def test_plan_with_a_missing_rules_file_or_bad_metadata_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["plan", "a.jpg", "--rules", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert main(["plan", "a.jpg", "--metadata", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
