"""`vip-perception` gives help for every subcommand and clear errors; its command modules
follow one naming rule and the library never imports them."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import import_graph
from vip_perception import cli

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vip_perception"
COMMANDS_PACKAGE = "vip_perception.commands"
COMMANDS_DIR = PACKAGE / "commands"


def _run(*args):
    return subprocess.run([sys.executable, "-m", "vip_perception.cli", *args],
                          capture_output=True, text=True, timeout=120)


def _expected_module(group: str | None, name: str) -> str:
    """The naming rule: ``vip-perception GROUP NAME`` is ``commands/GROUP_NAME.py`` (``NAME.py``
    for a top-level command), dashes as underscores."""
    stem = f"{group}_{name}" if group else name
    return f"{COMMANDS_PACKAGE}.{stem.replace('-', '_')}"


def test_top_level_help_lists_groups():
    out = _run("--help")
    assert out.returncode == 0
    for word in ("bench", "bank", "evaluate", "demo"):
        assert word in out.stdout


def test_top_level_help_imports_neither_torch_nor_rclpy():
    code = ("import sys\nfrom vip_perception import cli\ncli.build_parser(['--help'])\n"
            "print(sorted(m for m in ('torch', 'rclpy', 'cv2') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


_HELP_OF_EVERY_COMMAND = """
import contextlib, io, json, sys
from vip_perception import cli
out = {}
for group, name in cli.COMMANDS:
    args = ([group] if group else []) + [name, "--help"]
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        try:
            code = cli.main(args)
        except SystemExit as exc:
            code = exc.code
    out[" ".join(args[:-1])] = [code, text.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def help_texts() -> dict:
    """{"GROUP NAME": [exit code, stdout]} of `vip-perception GROUP NAME --help` for every
    command, from one child process (each command's help imports its module, torch included:
    one import instead of one per command)."""
    out = subprocess.run([sys.executable, "-c", _HELP_OF_EVERY_COMMAND], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("group,name", [k for k in cli.COMMANDS])
def test_every_subcommand_has_help(group, name, help_texts):
    code, text = help_texts[" ".join(w for w in (group, name) if w)]
    assert code == 0, text
    assert "usage: vip-perception" in text


@pytest.mark.parametrize("group,name", [k for k in cli.COMMANDS])
def test_every_command_module_follows_the_naming_rule(group, name):
    """Read from the source (nothing imported): the module is where the rule puts it and
    defines ``add_arguments(parser)`` and ``run(args)`` at top level."""
    module, help_text = cli.COMMANDS[(group, name)]
    command = " ".join(w for w in ("vip-perception", group, name) if w)
    assert help_text.strip(), f"{command}: no help text"
    assert module == _expected_module(group, name), f"{command}: {module} breaks the naming rule"
    path = ROOT / (module.replace(".", "/") + ".py")
    assert path.is_file(), f"{command}: {path.relative_to(ROOT)} does not exist"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    functions = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    for fn in ("add_arguments", "run"):
        assert fn in functions, f"{path.relative_to(ROOT)} has no top-level {fn}()"
        assert len(functions[fn].args.args) == 1, f"{path.relative_to(ROOT)}: {fn} takes one argument"


def test_every_command_module_is_a_registered_command():
    registered = {module for module, _ in cli.COMMANDS.values()}
    present = {f"{COMMANDS_PACKAGE}.{p.stem}" for p in COMMANDS_DIR.glob("*.py") if p.stem != "__init__"}
    assert present - registered == set(), "command modules without a COMMANDS entry"


def test_nothing_outside_commands_imports_commands():
    """Command modules are leaves: the library (and the CLI, which loads them by name from its
    table) never imports them."""
    graph = import_graph.build(PACKAGE)
    inside = lambda m: m == COMMANDS_PACKAGE or m.startswith(COMMANDS_PACKAGE + ".")  # noqa: E731
    found = [f"{e.path}:{e.line}: {e.source} imports {e.target}"
             for e in graph.edges if inside(e.target) and not inside(e.source)]
    assert not found, "the library imports command modules:\n" + "\n".join(found)


def test_group_without_subcommand_prints_help_and_fails():
    out = _run("bank")
    assert out.returncode == 2
    assert "build" in out.stdout and "show" in out.stdout


def test_unknown_command_is_an_error():
    out = _run("frobnicate")
    assert out.returncode == 2
    assert "invalid choice" in out.stderr


def _subparser_actions(group: str | None, name: str) -> list:
    """The argparse actions of `vip-perception GROUP NAME` (its module's add_arguments)."""
    argv = ([group] if group else []) + [name]
    parser = cli.build_parser(argv)
    sub = parser._subparsers._group_actions[0].choices[argv[0]]  # noqa: SLF001 - argparse has no API for it
    if group:
        sub = sub._subparsers._group_actions[0].choices[name]  # noqa: SLF001
    return sub._actions  # noqa: SLF001


@pytest.mark.parametrize("group,name", [k for k in cli.COMMANDS])
def test_every_command_that_reads_a_bank_takes_a_shipped_bank_name(group, name):
    """The node's `bank` parameter takes "station" as well as a path; so does every command that
    reads a bank (`vip-perception demo --bank station`, `bank show station`, ...): one rule,
    share.bank_directory."""
    from vip_perception.share import bank_directory

    banks = [a for a in _subparser_actions(group, name) if a.dest == "bank"]
    if not banks:
        return
    assert banks[0].type is bank_directory, f"{group} {name}: its bank argument needs type=bank_directory"
    assert "station" in banks[0].help


@pytest.mark.parametrize("argv", [["bank", "show", "station"], ["evaluate", "deadline", "--bank", "station"],
                                  ["demo", "--bank", "conveyor_detector"], ["soak", "--bank", "fashion_mnist"]])
def test_a_shipped_bank_name_parses_to_its_directory(argv):
    args = cli.build_parser(argv).parse_args(argv)
    assert Path(args.bank).samefile(ROOT / "config" / "banks" / argv[-1])
    here = argv[:-1] + ["config/banks/station"]  # a path is taken as it is
    assert cli.build_parser(here).parse_args(here).bank == "config/banks/station"


def test_bank_show_of_a_shipped_name_and_tools_resolve_it(capsys):
    from vip_perception.ros.tools.processes import resolve_bank

    assert cli.main(["bank", "show", "station"]) == 0
    assert "vgg_xl" in capsys.readouterr().out
    assert Path(resolve_bank("station")).samefile(ROOT / "config" / "banks" / "station")
    with pytest.raises(SystemExit, match="no_such_bank: no manifest.json"):
        resolve_bank("no_such_bank")



def test_bank_profile_errors_are_one_line_on_stderr(capsys, tmp_path):
    assert cli.main(["bank", "profile", str(tmp_path), "--threads", "one"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: --threads must be comma-separated integers")
    assert cli.main(["bank", "profile", str(tmp_path / "nowhere"), "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("error: ") and err.count("\n") == 1
    assert "nowhere: no such bank directory" in err and "shipped banks go by name: fashion_mnist, station" in err
    (tmp_path / "empty").mkdir()  # a directory without a manifest says that instead
    assert cli.main(["bank", "show", str(tmp_path / "empty")]) != 0
    assert "empty/manifest.json: bank manifest not found" in capsys.readouterr().err
