"""The README's command table names real make targets and management commands."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.config.subprocess_env import ROOT, embedded_environment
from tests.docs.markdown import README, section, table_first_cells

MAKE_TARGET = re.compile(r"^`make ([a-z][a-z0-9-]*)`")
MANAGE_COMMAND = re.compile(r"^`(?:\S*/)?manage\.py ([a-z_]+)")


def commands_table() -> list[str]:
    return table_first_cells(section(README.read_text(), "Commands"))


def makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z0-9-]*):", text, re.M))


def test_every_make_target_in_the_table_exists() -> None:
    targets = [m.group(1) for c in commands_table() if (m := MAKE_TARGET.match(c))]
    assert {"run", "test", "lint", "bench"} <= set(targets)
    missing = sorted(set(targets) - makefile_targets())
    assert not missing, f"README names make targets the Makefile lacks: {missing}"


def test_every_make_target_of_the_makefile_is_in_the_table() -> None:
    targets = {m.group(1) for c in commands_table() if (m := MAKE_TARGET.match(c))}
    internal = {"help", "install", "clean"}
    undocumented = sorted(makefile_targets() - internal - targets)
    assert not undocumented, f"Makefile targets missing from README's table: {undocumented}"


# One child process, one Django start-up, then each command's --help as manage.py runs it.
HELP_ALL = """
import contextlib, io, json, os, sys
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
from django.core.management import ManagementUtility
answers = {}
for name in sys.argv[1:]:
    out = io.StringIO()
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            ManagementUtility(["manage.py", name, "--help"]).execute()
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 1
    answers[name] = [code, out.getvalue()]
print(json.dumps(answers))
"""


def test_every_management_command_in_the_table_answers_help(tmp_path: Path) -> None:
    names = sorted({m.group(1) for c in commands_table() if (m := MANAGE_COMMAND.match(c))})
    assert len(names) >= 5, names
    env = embedded_environment(tmp_path / "help.sqlite3")
    child = subprocess.run(
        [sys.executable, "-c", HELP_ALL, *names],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    answers = json.loads(child.stdout.strip().splitlines()[-1])
    failures = {
        name: (code, text[-300:])
        for name, (code, text) in answers.items()
        if code != 0 or f"manage.py {name}" not in text
    }
    assert not failures, failures
