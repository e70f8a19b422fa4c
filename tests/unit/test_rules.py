"""Rules and pipelines: matching uploads, validating the file with errors that say where, output keys, the
pipeline's hash, today's single tool as the default rule, and `picsart-local rules check`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from picsart_adapter.rules import (
    Pipeline,
    Rule,
    Rules,
    RulesError,
    default_rules,
    load_rules,
    match_upload,
    output_extension,
    output_key,
    parse_rules,
    pipeline_hash,
    result_key,
)
from picsart_adapter.tools import FORMAT_MEDIA, tool
from picsart_local.cli import main

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPOSITORY_ROOT / "layers" / "picsart_adapter" / "rules" / "example.json"
REMOVEBG: dict[str, Any] = {"tool": "removebg"}


def rules_of(*rules: dict[str, Any], pipelines: dict[str, Any] | None = None) -> Rules:
    document: dict[str, Any] = {"rules": list(rules)}
    document["pipelines"] = pipelines if pipelines is not None else {"cutout": {"steps": [REMOVEBG]}}
    return parse_rules(json.dumps(document))


def one_rule(match: dict[str, Any]) -> Rules:
    return rules_of({"name": "only", "match": match, "pipelines": ["cutout"]})


def problems_of(document: dict[str, Any]) -> list[str]:
    with pytest.raises(RulesError) as raised:
        parse_rules(json.dumps(document))
    return raised.value.problems


def matched(rules: Rules, key: str, content_type: str | None = "image/jpeg", size: int = 1000, **metadata: str) -> str:
    found = match_upload(rules, key, content_type, size, metadata)
    return found.rule.name if found else "-"


# Matching


def test_prefix_matches_the_start_of_the_key_case_sensitively() -> None:
    rules = one_rule({"prefix": "products/"})
    assert matched(rules, "products/a.jpg") == "only"
    assert matched(rules, "Products/a.jpg") == "-"
    assert matched(rules, "other/products/a.jpg") == "-"


@pytest.mark.parametrize("key", ["a.jpg", "IMG.Jpg", "dir/PHOTO.JPG"])
def test_suffix_matches_in_any_case(key: str) -> None:
    assert matched(one_rule({"suffix": ".jpg"}), key) == "only"
    assert matched(one_rule({"suffix": ".JPG"}), key) == "only"


def test_suffix_refuses_other_endings() -> None:
    assert matched(one_rule({"suffix": ".jpg"}), "a.jpeg") == "-"


@pytest.mark.parametrize(
    ("glob", "key", "expected"),
    [
        ("avatars/*.png", "avatars/me.png", "only"),
        ("avatars/*.png", "AVATARS/ME.PNG", "only"),
        ("avatars/*.png", "avatars/team/me.png", "only"),  # fnmatch's `*` crosses `/`
        ("avatars/*.png", "avatars/me.jpg", "-"),
        ("*/scan-??.tif", "a/scan-01.TIF", "only"),
        ("*/scan-??.tif", "a/scan-001.tif", "-"),
    ],
)
def test_glob_matches_the_whole_key_in_any_case(glob: str, key: str, expected: str) -> None:
    assert matched(one_rule({"glob": glob}), key) == expected


def test_content_type_is_any_of_the_sniffed_types_listed() -> None:
    rules = one_rule({"content_type": ["image/png", "IMAGE/WEBP"]})
    assert matched(rules, "a.jpg", "image/png") == "only"
    assert matched(rules, "a.jpg", "image/webp") == "only"
    assert matched(rules, "a.png", "image/jpeg") == "-"
    assert matched(rules, "a.png", None) == "-"


@pytest.mark.parametrize(("size", "expected"), [(99, "-"), (100, "only"), (500, "only"), (1000, "only"), (1001, "-")])
def test_size_bounds_include_both_ends(size: int, expected: str) -> None:
    assert matched(one_rule({"size": {"min": 100, "max": 1000}}), "a.jpg", size=size) == expected


def test_size_with_one_bound() -> None:
    assert matched(one_rule({"size": {"max": 10}}), "a.jpg", size=0) == "only"
    assert matched(one_rule({"size": {"min": 10}}), "a.jpg", size=10**9) == "only"


def test_metadata_must_equal_with_keys_in_any_case_and_no_prefix() -> None:
    rules = one_rule({"metadata": {"Picsart-Pipeline": "product"}})
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {"picsart-pipeline": "product"}) is not None
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {"PICSART-PIPELINE": "product"}) is not None
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {"x-amz-meta-picsart-pipeline": "product"}) is not None
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {"picsart-pipeline": "Product"}) is None
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {}) is None
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, None) is None


def test_a_rule_key_written_with_the_prefix_means_the_same_key() -> None:
    rules = one_rule({"metadata": {"x-amz-meta-team": "shop"}})
    assert match_upload(rules, "a.jpg", "image/jpeg", 1, {"team": "shop"}) is not None


def test_every_criterion_given_must_hold() -> None:
    rules = one_rule({"prefix": "p/", "suffix": ".png", "content_type": ["image/png"], "size": {"max": 10}})
    assert matched(rules, "p/a.png", "image/png", 10) == "only"
    assert matched(rules, "p/a.png", "image/png", 11) == "-"
    assert matched(rules, "q/a.png", "image/png", 10) == "-"
    assert matched(rules, "p/a.png", "image/jpeg", 10) == "-"


def test_no_criteria_match_every_upload() -> None:
    assert matched(one_rule({}), "anything/at/all.heic", "image/heic", 5) == "only"


def test_first_match_wins_and_no_match_is_none() -> None:
    rules = rules_of(
        {"name": "avatars", "match": {"prefix": "avatars/"}, "pipelines": ["cutout"]},
        {"name": "pngs", "match": {"suffix": ".png"}, "pipelines": ["cutout"]},
        {"name": "small", "match": {"size": {"max": 100}}, "pipelines": ["cutout"]},
    )
    assert matched(rules, "avatars/me.png", size=10) == "avatars"
    assert matched(rules, "shop/me.png", size=10) == "pngs"
    assert matched(rules, "shop/me.jpg", size=10) == "small"
    assert matched(rules, "shop/me.jpg", size=101) == "-"


def test_a_match_gives_the_rule_and_its_pipelines_in_order() -> None:
    rules = rules_of(
        {"name": "both", "pipelines": ["cutout", "bigger"]},
        pipelines={
            "cutout": {"steps": [REMOVEBG]},
            "bigger": {"steps": [{"tool": "upscale", "parameters": {"upscale_factor": 2}}]},
        },
    )
    found = match_upload(rules, "a.jpg", "image/jpeg", 1)
    assert found is not None
    assert found.rule.name == "both"
    assert [pipeline.name for pipeline in found.pipelines] == ["cutout", "bigger"]


# Validation: every error names where it is


def test_a_parameter_error_names_the_rule_pipeline_step_tool_and_field() -> None:
    problems = problems_of(
        {
            "rules": [{"name": "products", "pipelines": ["cutout-white"]}],
            "pipelines": {
                "cutout-white": {
                    "steps": [REMOVEBG, {"tool": "upscale", "parameters": {"upscale_factor": 3}}],
                }
            },
        }
    )
    assert problems == [
        'rule "products", pipeline "cutout-white", step 2 (upscale): upscale_factor: Input should be 2, 4, 6 or 8 '
        "(got 3)"
    ]


def test_an_inline_pipeline_error_names_its_rule() -> None:
    problems = problems_of(
        {
            "rules": [
                {
                    "name": "avatars",
                    "pipelines": [{"name": "face", "steps": [{"tool": "enhance-face", "parameters": {"size": 1}}]}],
                }
            ]
        }
    )
    assert problems == [
        'rule "avatars", pipeline "face", step 1 (enhance-face): size: Extra inputs are not permitted (got 1)'
    ]


def test_a_pipeline_shared_by_rules_names_each_of_them() -> None:
    problems = problems_of(
        {
            "rules": [{"name": "a", "pipelines": ["p"]}, {"name": "b", "pipelines": ["p"]}],
            "pipelines": {"p": {"steps": [{"tool": "removebg", "parameters": {"bg_blur": 101}}]}},
        }
    )
    assert problems == [
        'rules "a", "b", pipeline "p", step 1 (removebg): bg_blur: Input should be less than or equal to 100 (got 101)'
    ]


def test_an_unknown_tool_names_the_step_and_suggests_the_nearest() -> None:
    problems = problems_of(
        {"rules": [{"name": "r", "pipelines": ["p"]}], "pipelines": {"p": {"steps": [{"tool": "upscal"}]}}}
    )
    assert problems == [
        "rule \"r\", pipeline \"p\", step 1: tool: 'upscal' is not in Picsart's tool catalogue; did you mean 'upscale'?"
    ]


def test_a_missing_pipeline_names_the_rule() -> None:
    problems = problems_of(
        {"rules": [{"name": "r", "pipelines": ["cutuot"]}], "pipelines": {"cutout": {"steps": [REMOVEBG]}}}
    )
    assert problems == ['rule "r": pipelines: no pipeline is named "cutuot"; did you mean \'cutout\'?']


@pytest.mark.parametrize(
    ("steps", "problem"),
    [
        (
            [{"tool": "tags"}, REMOVEBG],
            "step 1 (tags): tool: tags answers with data, not an image: only the last step may",
        ),
        (
            [{"tool": "vectorizer"}, REMOVEBG],
            "step 1 (vectorizer): tool: vectorizer answers with an image of a format the spec does not name: only "
            "the last step may",
        ),
        (
            [{"tool": "effects-laserengraving", "parameters": {"format": "SVG"}}, REMOVEBG],
            "step 1 (effects-laserengraving): tool: effects-laserengraving answers with a SVG image, which Picsart "
            "does not take as input: only the last step may",
        ),
    ],
)
def test_a_step_whose_answer_cannot_be_an_input_is_only_allowed_last(steps: list[dict[str, Any]], problem: str) -> None:
    problems = problems_of({"rules": [{"name": "r", "pipelines": ["p"]}], "pipelines": {"p": {"steps": steps}}})
    assert problems == [f'rule "r", pipeline "p", {problem}']


def test_a_data_step_last_or_alone_is_valid() -> None:
    rules = rules_of(
        {"name": "r", "pipelines": ["cut-and-tag", "tags"]},
        pipelines={"cut-and-tag": {"steps": [REMOVEBG, {"tool": "tags"}]}, "tags": {"steps": [{"tool": "tags"}]}},
    )
    pipelines = rules.pipelines
    assert output_extension(pipelines["cut-and-tag"]) == "png"  # the image, with the data beside it
    assert output_extension(pipelines["tags"]) == "json"


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{pipeline}/{name}.{ext}", "unknown placeholder {name}"),
        ("{pipeline}/{}.{ext}", "unknown placeholder {}"),
        ("{pipeline}/{stem!r}.{ext}", "{stem} takes no format or conversion"),
        ("{pipeline}/{stem", "expected '}' before end of string"),
        ("{dir}/{stem}.{ext}", "a key starts with no '/' and holds no '//'"),
    ],
)
def test_a_bad_output_template_names_the_pipeline_and_the_field(template: str, problem: str) -> None:
    problems = problems_of(
        {"rules": [{"name": "r", "pipelines": ["p"]}], "pipelines": {"p": {"steps": [REMOVEBG], "output": template}}}
    )
    assert len(problems) == 1
    assert problems[0].startswith('rule "r", pipeline "p": output: ')
    assert problem in problems[0]


def test_rule_level_errors_are_all_reported_and_each_names_the_rule_and_field() -> None:
    problems = problems_of(
        {
            "rules": [
                {"name": "sizes", "match": {"size": {"min": 5, "max": 1}}, "pipelines": ["p"]},
                {"name": "types", "match": {"content_type": ["image/jpg"]}, "pipelines": ["p"]},
                {"name": "typo", "match": {"sufix": ".png"}, "pipelines": ["p"]},
                {"name": "policy", "pipelines": ["p"], "on_failure": "retry"},
                {"name": "sizes", "pipelines": ["p"]},
                {"pipelines": ["p"]},
                {"name": "loose", "match": {"size": {"max": "100"}}, "pipelines": ["p"]},
            ],
            "pipelines": {"p": {"steps": [REMOVEBG]}},
        }
    )
    assert problems == [
        'rule "sizes": match.size: min (5) is above max (1)',
        'rule "types": match.content_type: image/jpg is not a sniffed type; one of image/heic, image/jpeg, '
        "image/png, image/tiff, image/webp",
        "rule \"typo\": match.sufix: Extra inputs are not permitted (got '.png')",
        "rule \"policy\": on_failure: Input should be 'fail' or 'copy-original' (got 'retry')",
        'rule "sizes": name: another rule has this name; rule names are unique',
        "rule 6: name: Field required",
        "rule \"loose\": match.size.max: Input should be a valid integer (got '100')",
    ]


def test_pipeline_names_are_unique_and_a_rule_names_each_pipeline_once() -> None:
    problems = problems_of(
        {
            "rules": [
                {"name": "twice", "pipelines": ["p", "p"]},
                {"name": "clash", "pipelines": [{"name": "p", "steps": [REMOVEBG]}]},
            ],
            "pipelines": {"p": {"steps": [REMOVEBG]}},
        }
    )
    assert problems == [
        'rule "twice": pipelines: "p" is named twice',
        'rule "clash", pipeline "p": name: another pipeline has this name',
    ]


def test_two_pipelines_of_a_rule_may_not_write_the_same_key() -> None:
    problems = problems_of(
        {
            "rules": [{"name": "r", "pipelines": ["a", "b"]}],
            "pipelines": {
                "a": {"steps": [REMOVEBG], "output": "out/{dir}{stem}.{ext}"},
                "b": {
                    "steps": [{"tool": "removebg", "parameters": {"bg_color": "#fff"}}],
                    "output": "out/{dir}{stem}.{ext}",
                },
            },
        }
    )
    assert problems == ['rule "r": pipelines: "a" and "b" write the same output key (out/photo.png for photo.jpg)']


def test_a_repeated_json_key_is_an_error_not_a_silent_override() -> None:
    with pytest.raises(RulesError, match='"p" is given twice'):
        parse_rules(
            '{"rules": [{"name": "r", "pipelines": ["p"]}], "pipelines": {"p": {"steps": []}, "p": {"steps": []}}}'
        )


def test_the_error_message_lists_every_problem_and_names_the_file() -> None:
    with pytest.raises(RulesError) as raised:
        parse_rules('{"rules": []}', source="rules/empty.json")
    assert str(raised.value) == (
        "rules/empty.json is not a valid rules file (1 error):\n  - rules: a non-empty list of rules is required"
    )


# The default rule: today's single tool


@pytest.mark.parametrize(
    ("tool_name", "parameters"),
    [("removebg", {}), ("removebg", {"format": "JPG"}), ("upscale", {"upscale_factor": 4}), ("ultra-upscale", {})],
)
@pytest.mark.parametrize(
    "key", ["a.jpg", "a.png", "uploads/a.JPEG", "uploads/a.webp", "deep/dir/summer sale + café.png", "IMG.Jpg"]
)
def test_default_rules_write_todays_output_keys(tool_name: str, parameters: dict[str, Any], key: str) -> None:
    picsart_tool = tool(tool_name)
    validated = picsart_tool.parse_parameters(parameters)
    rules = default_rules(picsart_tool, validated)
    found = match_upload(rules, key, "image/jpeg", 123_456, {"any": "thing"})
    assert found is not None
    (pipeline,) = found.pipelines
    assert (found.rule.name, pipeline.name) == (tool_name, tool_name)
    assert [(step.tool, step.parameters) for step in pipeline.steps] == [(tool_name, validated)]
    extension = FORMAT_MEDIA[picsart_tool.output_format(validated)][1]
    assert output_extension(pipeline) == extension
    assert output_key(pipeline, found.rule, key, "version:v1", extension) == result_key(key, tool_name, extension)


# Output templates


def template_pipeline(template: str | None) -> tuple[Pipeline, Rule]:
    rules = rules_of(
        {"name": "shop", "pipelines": ["cut"]}, pipelines={"cut": {"steps": [REMOVEBG], "output": template}}
    )
    return rules.pipelines["cut"], rules.rules[0]


@pytest.mark.parametrize(
    ("template", "key", "version_ref", "expected"),
    [
        ("{pipeline}/{dir}{stem}.{ext}", "products/mug.jpg", "version:v1", "cut/products/mug.png"),
        ("{pipeline}/{dir}{stem}.{ext}", "mug.jpg", "version:v1", "cut/mug.png"),
        ("{rule}/{stem}-{version}.{ext}", "a/b/mug.jpg", "version:3HL4kqtJ", "shop/mug-3HL4kqtJ.png"),
        (
            "{rule}/{stem}-{version}.{ext}",
            "mug.jpg",
            'etag:"9b2cf535f27731c974343645a3985328"',
            "shop/mug-9b2cf535f27731c974343645a3985328.png",
        ),
        ("v/{dir}{stem}.{ext}", "a.b/archive.tar.jpg", "version:v1", "v/a.b/archive.tar.png"),
        ("{{literal}}/{stem}.{ext}", "mug.jpg", "version:v1", "{literal}/mug.png"),
    ],
)
def test_the_template_placeholders(template: str, key: str, version_ref: str, expected: str) -> None:
    pipeline, rule = template_pipeline(template)
    assert output_key(pipeline, rule, key, version_ref, "png") == expected


def test_no_template_is_the_pipeline_then_the_key_with_the_outputs_extension() -> None:
    pipeline, rule = template_pipeline(None)
    assert output_key(pipeline, rule, "products/mug.jpg", "version:v1", "png") == "cut/products/mug.jpg.png"
    assert output_key(pipeline, rule, "products/mug.png", "version:v1", "png") == "cut/products/mug.png"


# The pipeline's hash


def hash_of(steps: list[dict[str, Any]], name: str = "p", output: str | None = None) -> str:
    rules = rules_of({"name": "r", "pipelines": [name]}, pipelines={name: {"steps": steps, "output": output}})
    return pipeline_hash(rules.pipelines[name])


def test_pipeline_hash_is_stable_across_key_order_and_unset_parameters() -> None:
    first = hash_of([{"tool": "removebg", "parameters": {"bg_color": "#ffffff", "format": "JPG"}}])
    again = hash_of([{"parameters": {"format": "JPG", "bg_color": "#ffffff"}, "tool": "removebg"}])
    with_none = hash_of([{"tool": "removebg", "parameters": {"format": "JPG", "bg_color": "#ffffff", "scale": None}}])
    assert first == again == with_none
    assert len(first) == 16
    assert all(character in "0123456789abcdef" for character in first)


def test_pipeline_hash_changes_with_a_parameter_a_tool_or_the_order_but_not_the_name_or_output() -> None:
    cut, bigger = {"tool": "removebg"}, {"tool": "upscale", "parameters": {"upscale_factor": 2}}
    base = hash_of([cut, bigger])
    assert hash_of([cut, {"tool": "upscale", "parameters": {"upscale_factor": 4}}]) != base
    assert hash_of([cut, {"tool": "ultra-upscale"}]) != base
    assert hash_of([{"tool": "upscale", "parameters": {"upscale_factor": 2}}, cut]) != base
    assert hash_of([cut, bigger], name="renamed", output="x/{stem}.{ext}") == base


# The example file and the command


def test_the_example_file_is_valid_and_does_what_the_issue_describes() -> None:
    rules = load_rules(EXAMPLE)
    assert len(rules.rules) >= 3
    product = match_upload(rules, "products/mug.jpg", "image/jpeg", 2_000_000)
    assert product is not None
    assert [step.tool for step in product.pipelines[0].steps] == ["removebg", "upscale"]
    assert product.rule.on_failure == "copy-original"
    tagged = match_upload(rules, "misc/mug.jpg", "image/jpeg", 2_000_000, {"picsart-pipeline": "product"})
    assert tagged is not None
    assert tagged.pipelines == product.pipelines
    avatar = match_upload(rules, "avatars/me.png", "image/png", 300_000)
    assert avatar is not None
    assert [step.tool for pipeline in avatar.pipelines for step in pipeline.steps] == ["enhance-face"]
    other = match_upload(rules, "holiday/beach.webp", "image/webp", 300_000)
    assert other is not None
    assert [step.tool for pipeline in other.pipelines for step in pipeline.steps] == ["edit", "tags"]


def test_loading_rules_imports_only_the_models_they_use() -> None:
    code = (
        "import sys; from pathlib import Path; from picsart_adapter.rules import load_rules; "
        f"load_rules(Path({str(EXAMPLE)!r})); "
        "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('picsart_adapter.tool_models.')))"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(output.replace("'", '"')) == ["edit", "enhance_face", "removebg", "tags", "upscale"]


def test_rules_check_prints_the_rules_pipelines_steps_and_calls(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "check", str(EXAMPLE)]) == 0
    printed = capsys.readouterr().out
    assert "rule 'products'" in printed
    assert "Picsart calls per upload: 2" in printed
    assert "pipeline 'cutout-white' (hash " in printed
    assert '2. upscale {"format": "JPG", "upscale_factor": 2} (image)' in printed
    assert "folder/photo.jpg -> tags/folder/photo.jpg.json" in printed


def test_rules_check_of_a_broken_file_names_the_rule_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.json"
    document = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    document["pipelines"]["cutout-white"]["steps"][1]["parameters"]["upscale_factor"] = 3
    broken.write_text(json.dumps(document), encoding="utf-8")
    assert main(["rules", "check", str(broken)]) == 2
    error = capsys.readouterr().err
    assert f"{broken} is not a valid rules file (1 error)" in error
    assert 'rules "products", "tagged-products", pipeline "cutout-white", step 2 (upscale): upscale_factor' in error


# Credit floors (docs/credits.md)


def test_a_credit_floor_is_read_per_rule_and_the_rules_give_every_floor() -> None:
    rules = rules_of(
        {"name": "vip", "match": {"prefix": "vip/"}, "pipelines": ["cutout"]},
        {"name": "bulk", "pipelines": ["cutout"], "credit_floor": 500},
        {"name": "last", "pipelines": ["cutout"], "credit_floor": 0},
    )
    assert [rule.credit_floor for rule in rules.rules] == [None, 500, 0]
    assert rules.credit_floors == frozenset({500, 0})


def test_a_bad_credit_floor_names_the_rule_and_the_field() -> None:
    problems = problems_of(
        {
            "rules": [
                {"name": "negative", "pipelines": ["p"], "credit_floor": -1},
                {"name": "text", "pipelines": ["p"], "credit_floor": "500"},
            ],
            "pipelines": {"p": {"steps": [REMOVEBG]}},
        }
    )
    assert problems == [
        'rule "negative": credit_floor: Input should be greater than or equal to 0 (got -1)',
        "rule \"text\": credit_floor: Input should be a valid integer (got '500')",
    ]


def test_rules_check_prints_a_rules_credit_floor(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "rules": [{"name": "bulk", "pipelines": ["p"], "credit_floor": 500}],
                "pipelines": {"p": {"steps": [REMOVEBG]}},
            }
        )
    )
    assert main(["rules", "check", str(path)]) == 0
    assert "credit floor: waits while the balance is at or below 500" in capsys.readouterr().out
