"""The corpus of bad specs: each gives its expected located message, exit 2, and no traceback.

Each row: file under tests/bad_specs/, the ":LINE:COL" the message points at ("" where the input has no
position), and the text after "error: " (field path and message).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import assert_clean_failure, cli

CORPUS = Path(__file__).resolve().parent / "bad_specs"

EXPECTED = [
    # issue 15: valid must mean buildable, and a name must not shadow a module Python imports
    (
        "epsilon_subnormal.yaml",
        ":11:17",
        "norm.epsilon: 1e-40 is below float32's smallest normal number, about 1.18e-38, which TensorFlow "
        "flushes to 0 (the output is then NaN); use 1.2e-38 or more",
    ),
    (
        "weight_standardized_epsilon_subnormal.yaml",
        ":8:44",
        "conv.epsilon: 1e-45 is below float32's smallest normal number, about 1.18e-38, which TensorFlow "
        "flushes to 0 (the output is then NaN); use 1.2e-38 or more",
    ),
    (
        "max_pool_padding_over_half.yaml",
        ":4:102",
        "stem.pool.padding: a 3x3 max-pool pads at most half its kernel, 1, on each side "
        "(torch's nn.MaxPool2d refuses more)",
    ),
    (
        "name_shadows_stdlib.yaml",
        ":2:7",
        "name: name 'copy' would shadow the Python module 'copy': a generated copy.py beside your code breaks every import of it (torch imports copy, math and typing); choose another name",
    ),
    (
        "name_shadows_framework.yaml",
        ":2:7",
        "name: name 'NumPy' would shadow the Python module 'numpy': a generated NumPy.py beside your code breaks every import of it (torch imports copy, math and typing); choose another name",
    ),
    (
        "name_shadows_startup_module.yaml",
        ":2:7",
        "name: name 'sitecustomize' would shadow the Python module 'sitecustomize': a generated sitecustomize.py beside your code breaks every import of it (torch imports copy, math and typing); choose another name",
    ),
    (
        "backbone_bool_tap.yaml",
        ":10:29",
        "backbone.features[1]: a tap is 'stem' or a stage number from 1 to 8 (got True)",
    ),
    (
        "backbone_features_out_of_order.yaml",
        ":10:22",
        "backbone.features: features lists each tap once, in network order: stem, then stages by number "
        "(as timm's out_indices)",
    ),
    (
        "backbone_features_with_classifier.yaml",
        ":10:22",
        "backbone.features: features replace the head's output: set head: {kind: none}",
    ),
    (
        "backbone_head_none_without_features.yaml",
        ":9:14",
        "head.kind: head kind 'none' returns backbone.features: list the taps there, or give a classifier head",
    ),
    (
        "backbone_output_stride_4.yaml",
        ":10:45",
        "backbone.output_stride: Input should be 32, 16 or 8 (got 4)",
    ),
    (
        "backbone_dilation_unknown.yaml",
        ":10:40",
        "backbone.dilation: Input should be 'torchvision' or 'whole_stage' (got 'detectron2')",
    ),
    (
        "backbone_dilation_stride_last.yaml",
        ":12:42",
        "backbone.output_stride: output_stride cannot dilate a network with the stride on a stage's "
        "last block: use block.stride_block: first, or keep output_stride: 32",
    ),
    (
        "backbone_last_stage_untapped.yaml",
        ":10:22",
        "backbone.features: stage 2 follows the last tap and feeds no output: tap it, or remove the stage",
    ),
    (
        "backbone_frozen_past_last_stage.yaml",
        ":10:45",
        "backbone.frozen_stages: frozen_stages freezes stage 3, but the network has 2 stages",
    ),
    (
        "backbone_frozen_negative.yaml",
        ":10:45",
        "backbone.frozen_stages: Input should be greater than or equal to 0 (got -1)",
    ),
    (
        "backbone_norm_eval_group_norm.yaml",
        ":11:41",
        "backbone.norm_eval: norm_eval keeps BatchNorm in eval mode, but the network normalizes with "
        "GroupNorm, which has no running statistics: remove norm_eval",
    ),
    (
        "backbone_tap_past_last_stage.yaml",
        ":10:22",
        "backbone.features: features taps stage 3, but the network has 2 stages",
    ),
    (
        "timm_resnetv2_paths_with_stem_norm.yaml",
        ":7:9",
        "stem.norm: timm's ResNetV2 stem has no normalization (its blocks normalize): set it to false",
    ),
    (
        "timm_resnetv2_paths_with_dense_classifier.yaml",
        ":9:51",
        "head.classifier: timm's ResNetV2 classifier is a 1x1 convolution: 'conv1x1'",
    ),
    (
        "weight_standardized_tf_same.yaml",
        ":9:10",
        "padding: weight-standardized convolutions need padding: symmetric (as timm's StdConv2d)",
    ),
    (
        "conv1x1_classifier_softmax.yaml",
        ":8:56",
        "head.output: a conv1x1 classifier returns logits, as timm's ResNetV2 does: use 'logits'",
    ),
    (
        "group_norm_groups_do_not_divide.yaml",
        ":8:29",
        "norm.groups: layer stem.bn: GroupNorm's 48 groups do not divide 64 channels",
    ),
    (
        "conv_pool_and_max_pool.yaml",
        ":8:14",
        "stem.conv_pool: conv_pool replaces the max-pool: set pool: null, or conv_pool: false",
    ),
    (
        "avg_down_with_max_pool_shortcut.yaml",
        ":8:43",
        "shortcut.stride_only: downsample 'avg_pool' already subsamples; use stride_only: project",
    ),
    (
        "wide_projection_with_avg_down.yaml",
        ":8:65",
        "shortcut.kernel_size: downsample 'avg_pool' projects with a 1x1 convolution; use kernel_size: 1",
    ),
    ("wide_projection_kernel_two.yaml", ":8:43", "shortcut.kernel_size: Input should be 1 or 3 (got 2)"),
    (
        "first_width_rounds_to_zero.yaml",
        ":7:5",
        "stages[0]: layer stage1.block1.conv1: outputs 0 channels: widen the stage (filters) or lower the divisors",
    ),
    (
        "anti_alias_preactivation.yaml",
        ":5:55",
        "block.anti_alias: anti_alias follows a strided convolution's ReLU; pre-activation blocks lack it",
    ),
    (
        "softmax_one_class.yaml",
        ":8:47",
        "head.output: a softmax over one class is always 1: with classes: 1 use output: logits "
        "(one logit, for a sigmoid), or give classes: 2",
    ),
    (
        "avg_stem_pool_padding.yaml",
        ":4:74",
        "stem.pool.padding: an average pool here has no padding: set padding: 0",
    ),
    (
        "unknown_attention.yaml",
        ":7:21",
        "block.attention.kind: unknown kind 'cbam'; expected one of: 'se', 'eca'",
    ),
    ("alias_bomb.yaml", ":1:32", "e[3][3][8][8][8]: spec has more than 50,000 values (aliases included)"),
    ("bad_float_tag.yaml", ":11:17", "norm.epsilon: '1:20' is not a number"),
    (
        "bad_name_injection.yaml",
        ":2:7",
        "name: a name starts with a letter, then letters (a-z, A-Z), digits or underscores, at most 64 characters in all (it becomes a Python name) (got 'tiny; import os')",
    ),
    ("bidi_override.yaml", ":3:14", "description: control character '\\u202e' is not allowed in a value"),
    (
        "binary_tag.yaml",
        ":2:7",
        "name: tag 'tag:yaml.org,2002:binary' is not allowed; a spec holds plain values only",
    ),
    ("bool_for_format_version.yaml", ":1:17", "format_version: Input should be a valid integer (got True)"),
    ("bool_for_int.yaml", ":7:14", "stages[0].blocks: Input should be a valid integer (got True)"),
    ("c1_control.yaml", ":3:16", "control character '\\x9b' is not allowed in a spec"),
    (
        "carriage_return_in_name.yaml",
        ":2:7",
        "name: control character '\\r' is not allowed in a value; write one line of text",
    ),
    (
        "collapse_stage.yaml",
        ":4:91",
        "stem.pool.stride: layer stem.pool: a 3x3 max-pool with stride 2 and padding 0 gets a 1x32 map and would output 0x15: the spatial size has collapsed; use a larger input or fewer strides",
    ),
    (
        "control_char_in_key.json",
        ":1:39",
        "'\\x1b[2J\\nerror': unknown field '\\x1b[2J\\nerror'; expected one of: format_version, name, description, input, stem, block, stages, shortcut, norm, conv, conv_bias, padding, regularization, init, head, torch_paths, keras_layer_order, backbone",
    ),
    ("custom_tag.yaml", ":3:17", "input.height: tag '!int' is not allowed; a spec holds plain values only"),
    (
        "deep_nesting.yaml",
        ":1:36",
        "a[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]: spec is nested more than 32 levels deep",
    ),
    ("dropout_one.yaml", ":10:49", "head.dropout: Input should be less than 1 (got 1.0)"),
    ("duplicate_key.yaml", ":11:1", "name: duplicate key (first defined on line 2)"),
    ("empty.yaml", "", "file is empty; a spec is a mapping of fields"),
    ("empty_stages.yaml", ":6:9", "stages: List should have at least 1 item after validation, not 0"),
    ("epsilon_zero.yaml", ":11:17", "norm.epsilon: Input should be greater than 0 (got 0)"),
    (
        "even_stem_kernel.yaml",
        ":4:46",
        "stem.kernel_size: kernel_size must be odd so that padding keeps the image centred",
    ),
    ("expansion_zero.yaml", ":5:38", "block.expansion: Input should be greater than or equal to 1 (got 0)"),
    ("explicit_bool_tag.yaml", ":4:66", "stem.norm: 'yes' is not a YAML 1.2 boolean; write true or false"),
    ("float_for_int.yaml", ":7:14", "stages[0].blocks: Input should be a valid integer (got 1.0)"),
    ("format_version_2.yaml", ":1:17", "format_version: Input should be 1 (got 2)"),
    ("hex_int.yaml", ":3:17", "input.height: '0x20': write the decimal integer 32"),
    (
        "huge_int.yaml",
        ":3:17",
        "input.height: Input should be less than or equal to 4096 (got 123456789012345678901234567890)",
    ),
    ("huge_int_digits.yaml", ":3:17", "input.height: a 5,000-digit integer is far too large for any field"),
    ("inf_float.yaml", ":11:17", "norm.epsilon: '-.inf' is not a finite number"),
    (
        "invalid_yaml.yaml",
        ":12:1",
        "invalid YAML: while parsing a flow sequence expected ',' or ']', but got '<stream end>'; "
        "hint: a [ or { that is not closed, or a comma missing between its items",
    ),
    ("json_deep_nesting.json", ":1:65", "spec is nested more than 32 levels deep"),
    ("json_duplicate.json", ":1:36", "name: duplicate key (first defined on line 1)"),
    ("json_huge_int.json", ":1:56", "input.height: a 401-digit integer is far too large for any field"),
    (
        "json_infinity.json",
        ":1:56",
        "norm.epsilon: Infinity is not a number a spec can hold; write a finite number",
    ),
    ("json_lone_surrogate.json", ":1:51", "description: a lone surrogate escape is not a character"),
    (
        "json_nan.json",
        ":1:56",
        "norm.epsilon: NaN is not a number a spec can hold; write a finite number",
    ),
    (
        "json_nan_after_string.json",
        ":2:40",
        "norm.momentum: NaN is not a number a spec can hold; write a finite number",
    ),
    ("json_overflow.json", ":1:56", "norm.epsilon: '1e999' overflows; write a finite number"),
    (
        "json_trailing_comma.json",
        ":3:1",
        "invalid JSON: Expecting property name enclosed in double quotes",
    ),
    (
        "json_wrong_type.json",
        ":4:23",
        "input.height: Input should be a valid integer; got the quoted string '32', write it without quotes",
    ),
    (
        "line_separator_in_description.yaml",
        ":3:14",
        "description: control character '\\u2028' is not allowed in a value; write one line of text",
    ),
    ("merge_key_bomb.yaml", ":2:10", "l1: merge keys ('<<') are not allowed; write the fields out"),
    ("missing_field.yaml", ":1:1", "head: required field is missing"),
    ("missing_kind.yaml", ":5:8", "block: 'kind' is missing; expected one of: 'basic', 'bottleneck'"),
    ("momentum_one.yaml", ":11:18", "norm.momentum: Input should be less than 1 (got 1.0)"),
    (
        "multi_document.yaml",
        ":11:1",
        "invalid YAML: expected a single document in the stream but found another document",
    ),
    ("name_builtin.yaml", ":2:7", "name: name 'print' is a Python builtin or a name generated code uses"),
    ("name_keyword.yaml", ":2:7", "name: name 'class' is a Python keyword"),
    (
        "name_leading_digit.yaml",
        ":2:7",
        "name: a name starts with a letter, then letters (a-z, A-Z), digits or underscores, at most 64 characters in all (it becomes a Python name) (got '1tiny')",
    ),
    ("nan_float.yaml", ":11:17", "norm.epsilon: '.nan' is not a finite number"),
    (
        "negative_stride.yaml",
        ":8:38",
        "stages[1].stride: Input should be greater than or equal to 1 (got -2)",
    ),
    (
        "newline_in_description.yaml",
        ":3:14",
        "description: control character '\\n' is not allowed in a value; write one line of text",
    ),
    ("not_utf8.yaml", ":2:1", "file is not valid UTF-8 text"),
    ("nul_byte.yaml", ":2:9", "control character '\\x00' is not allowed in a spec"),
    ("null_required.yaml", ":2:7", "name: Input should be a valid string (got None)"),
    (
        "octal_int.yaml",
        ":3:17",
        "input.height: '032' has a leading zero, which YAML 1.1 reads as octal; write 32",
    ),
    ("only_comment.yaml", "", "file is empty; a spec is a mapping of fields"),
    ("overflow_float.yaml", ":11:17", "norm.epsilon: '1e999' overflows; write a finite number"),
    (
        "pool_larger_than_map.yaml",
        ":10:39",
        "head.pool_size: layer head.pool: a 32x32 average pool does not fit the 16x16 feature map",
    ),
    (
        "pool_wrong_type.yaml",
        ":4:66",
        "stem.pool: Input should be a valid dictionary or instance of StemPool (got 3)",
    ),
    (
        "preactivated_without_preact.yaml",
        ":9:38",
        "shortcut.source: 'preactivated' needs block.preactivation: true; use 'input'",
    ),
    (
        "python_tag.yaml",
        ":2:7",
        "name: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed; a spec holds plain values only",
    ),
    (
        "quoted_number.yaml",
        ":3:17",
        "input.height: Input should be a valid integer; got the quoted string '32', write it without quotes",
    ),
    (
        "string_for_bool.yaml",
        ":5:37",
        "block.preactivation: Input should be a valid boolean; got the quoted string 'true', write it without quotes",
    ),
    (
        "tab_indent.yaml",
        ":8:1",
        "invalid YAML: while scanning for the next token found character '\\t' that cannot start any token; "
        "hint: a tab; YAML indents with spaces only",
    ),
    ("too_large.yaml", "", "file is 1,048,884 bytes; specs are limited to 1,048,576"),
    ("too_many_stages.yaml", ":7:3", "stages: List should have at most 8 items after validation, not 10"),
    ("top_level_list.yaml", ":1:1", "the top level of a spec must be a mapping of fields"),
    ("top_level_scalar.yaml", ":1:1", "the top level of a spec must be a mapping of fields"),
    ("underscore_int.yaml", ":10:36", "head.classes: '1_000': write the integer without underscores, 1000"),
    (
        "unknown_block_kind.yaml",
        ":5:15",
        "block.kind: unknown kind 'bottle'; expected one of: 'basic', 'bottleneck'",
    ),
    ("unknown_key.yaml", ":4:20", "stem.filtres: unknown field 'filtres'; did you mean 'filters'?"),
    (
        "unknown_literal.yaml",
        ":11:12",
        "conv_bias: Input should be 'none', 'all' or 'unnormalized' (got 'some')",
    ),
    (
        "unknown_top_key.yaml",
        ":11:1",
        "dropout: unknown field 'dropout'; it belongs in head.dropout",
    ),
    (
        "utf16_bom.yaml",
        ":1:1",
        "file is UTF-16 or UTF-32 text (it starts with a byte-order mark); save it as UTF-8",
    ),
    ("wrong_type_stages.yaml", ":6:9", "stages: Input should be a valid list (got 3)"),
    (
        "yaml11_directive.yaml",
        ":2:1",
        "'%YAML 1.1' directive: specs are read as YAML 1.2; remove the directive",
    ),
    (
        "yaml11_yes.yaml",
        ":4:66",
        "stem.norm: Input should be a valid boolean; 'yes' is a string in YAML 1.2, write true or false",
    ),
    ("yaml_deep_flow.yaml", ":1:67", "spec is nested more than 32 levels deep"),
    ("yaml_version_1_3.yaml", "", "invalid YAML: version minor part can only be 2 or 1, got (1, 3)"),
    ("zero_blocks.yaml", ":8:14", "stages[1].blocks: Input should be greater than or equal to 1 (got 0)"),
    ("zero_classes.yaml", ":10:36", "head.classes: Input should be greater than or equal to 1 (got 0)"),
    (
        "zero_width_in_description.yaml",
        ":3:14",
        "description: invisible format character '\\u200b' is not allowed in a value",
    ),
    # stages[i].block: a stage's own block kind (timm's per-stage block classes)
    (
        "stage_block_bottleneck_setting.yaml",
        ":5:35",
        "block.groups: applies only to bottleneck blocks, and stages[1] has basic blocks; a network that "
        "mixes kinds keeps 1 (timm's BasicBlock takes no such setting)",
    ),
    (
        "stage_block_same_kind.yaml",
        ":8:48",
        "stages[1].block: 'basic' is already block.kind; remove it (name only the other kind)",
    ),
    (
        "stage_block_first_stage.yaml",
        ":7:48",
        "stages[0].block: the first stage's blocks are block.kind's: set block.kind: bottleneck, and "
        "block: basic on the later stages that differ",
    ),
    (
        "stage_block_unknown_kind.yaml",
        ":8:48",
        "stages[1].block: Input should be 'basic' or 'bottleneck' (got 'resnext')",
    ),
]


def test_corpus_is_complete() -> None:
    assert {row[0] for row in EXPECTED} == {p.name for p in CORPUS.iterdir()}
    assert len(EXPECTED) >= 40


@pytest.mark.parametrize(("file", "where", "message"), EXPECTED, ids=[row[0] for row in EXPECTED])
def test_bad_spec_message(file: str, where: str, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(CORPUS)
    lines = assert_clean_failure(cli("validate", file))
    assert lines[0] == f"{file}{where}: error: {message}"
