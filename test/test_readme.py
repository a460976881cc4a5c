"""README.md stays a short user guide whose parameter tables are the nodes' declarations."""
from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


def _generator():
    spec = importlib.util.spec_from_file_location("readme_parameters",
                                                  ROOT / "scripts" / "readme_parameters.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_under_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines < 300, f"README.md has {lines} lines; move detail to docs/ or benchmarks/"


def test_parameter_tables_match_the_declarations():
    text = README.read_text(encoding="utf-8")
    regenerated = _generator().render(text)
    assert regenerated == text, ("README.md parameter tables differ from the declarations: run "
                                 "python scripts/readme_parameters.py")


def test_every_declared_parameter_has_a_row():
    gen = _generator()
    text = README.read_text(encoding="utf-8")
    for name, rows in gen.TABLES.items():
        block = text.split(f"<!-- BEGIN {name}", 1)[1].split(f"<!-- END {name} -->", 1)[0]
        for row in rows():
            assert f"| `{row.name}` |" in block, f"{name}: no row for {row.name}"


def test_a_changed_declaration_is_detected():
    gen = _generator()
    text = README.read_text(encoding="utf-8")
    stale = text.replace("| `deadline_ms` | `50.0` |", "| `deadline_ms` | `40.0` |")
    assert stale != text
    assert gen.render(stale) == text


def test_relative_links_exist():
    text = README.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), f"README.md links to missing {target}"


def test_no_build_machine_paths_or_tracker_jargon():
    text = README.read_text(encoding="utf-8")
    for pattern in (r"/work/", r"/tmp/", r"/root/", r"/home/", r"\bissue \d", r"seed paper"):
        assert not re.search(pattern, text, re.IGNORECASE), f"README.md contains {pattern!r}"


def _readme_json_examples() -> dict[str, dict]:
    """The README's ```jsonc block -> {topic: example object} (the comment names the topic)."""
    text = README.read_text(encoding="utf-8")
    block = text.split("```jsonc\n", 1)[1].split("```", 1)[0]
    examples, topic, lines = {}, None, []
    for line in [*block.splitlines(), "// end"]:
        if line.startswith("//"):
            if topic:
                examples[topic] = json.loads(" ".join(lines).replace("{...}", "{}"))
            topic, lines = line[2:].split(":", 1)[0].strip(), []
        else:
            lines.append(line)
    return examples


def test_json_message_examples_have_the_published_fields():
    from types import SimpleNamespace

    from vip_perception.results import Detection, TimingRecord
    from vip_perception.ros import output

    header = SimpleNamespace(stamp=SimpleNamespace(sec=1, nanosec=2), frame_id="camera")
    timing = TimingRecord("m", 1, 1.0, 1.0, 2.0, True, 1.0, 0.5)
    result = SimpleNamespace(class_id=1, class_name="Trouser", score=0.9, skipped=False,
                             timing=timing)
    det = Detection((1.0, 2.0, 3.0, 4.0), 0, "T-shirt/top", 0.9)
    published = {
        "classifications": output.classification_dict(header, "image_raw", result, (0, 0, 4, 4)),
        "detections": output.detections_dict(header, "image_raw", [det], "m"),
        "timing": output.timing_dict(header, "image_raw", result, 0.1, 2.0),
    }
    examples = _readme_json_examples()
    assert set(examples) == set(published)
    for topic, fields in published.items():
        assert set(examples[topic]) == set(fields), f"README.md's {topic} example"
