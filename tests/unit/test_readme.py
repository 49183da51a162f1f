"""The README's snippets, extracted and run: what it shows is what the library does."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from django.test import override_settings
from django.utils import timezone

from django_tasks import InvalidTaskError, TaskResultStatus

ROOT = Path(__file__).resolve().parents[2]
SNIPPET = re.compile(r"<!-- readme-test: (\S+) -->\n```\w+\n(.*?)```", re.DOTALL)


def snippets() -> dict[str, str]:
    """Return the README's tested snippets by name."""
    return dict(SNIPPET.findall((ROOT / "README.md").read_text()))


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Iterator[Path]:
    """Make the README's `shop/tasks.py` an importable package, as a user would have it."""
    folder = tmp_path_factory.mktemp("readme")
    package = folder / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "tasks.py").write_text(snippets()["shop/tasks.py"])
    (package / "ratios.py").write_text(
        "from django_tasks import task\n\n" + snippets()["custom-type"]
    )
    sys.path.insert(0, str(folder))
    # The README's settings declare an "emails" queue; its snippets run in line here.
    immediate = {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}
    settings = override_settings(TASKS={"default": {**immediate, "QUEUES": ["default", "emails"]}})
    settings.enable()
    try:
        yield package
    finally:
        settings.disable()
        sys.path.remove(str(folder))
        for name in [name for name in sys.modules if name == "shop" or name.startswith("shop.")]:
            del sys.modules[name]


def namespace(shop: Path) -> dict[str, Any]:
    tasks = importlib.import_module("shop.tasks")
    return {**vars(tasks), "Decimal": Decimal, "timezone": timezone}


def test_readme__enqueue(shop):
    scope = namespace(shop)

    exec(snippets()["enqueue"], scope)

    assert scope["result"].status == TaskResultStatus.SUCCESSFUL
    assert scope["result"].return_value.startswith("receipt for 42: 12.50 at ")


def test_readme__enqueue_many(shop):
    scope = namespace(shop)

    exec(snippets()["enqueue_many"], scope)

    assert [r.return_value.split(":")[0] for r in scope["results"]] == [
        f"receipt for {n}" for n in range(100)
    ]


def test_readme__validation_error_is_the_real_message(shop):
    expression, expected = parse_pycon(snippets()["validation-error"])

    with pytest.raises(InvalidTaskError) as caught:
        eval(expression, namespace(shop))

    error = caught.value
    assert f"{type(error).__module__}.{type(error).__qualname__}: {error}" == expected


def parse_pycon(text: str) -> tuple[str, str]:
    """Return the `>>>` expression and the exception lines after the traceback's `...`."""
    lines = text.rstrip("\n").splitlines()
    expression = lines[0].removeprefix(">>> ")
    return expression, "\n".join(lines[lines.index("  ...") + 1 :])


def test_readme__custom_type_round_trips(shop):
    ratios = importlib.import_module("shop.ratios")

    result = ratios.scale.enqueue("bread", Fraction(3, 4))

    assert result.return_value == Fraction(3, 2)
    assert type(result.return_value) is Fraction
    assert result.args == ["bread", Fraction(3, 4)]


def test_readme__testing_example_passes(shop):
    scope = namespace(shop)

    exec(snippets()["testing"], scope)
    scope["test_receipt_is_enqueued_then_runs"]()


@pytest.mark.parametrize("checker", ["mypy", "pyright"])
def test_readme__type_checker_output_is_real(shop, tmp_path, checker):
    source = snippets()["shop/tasks.py"] + "\n\n" + snippets()["mypy-input"]
    checked = tmp_path / "shop"
    checked.mkdir()
    (checked / "__init__.py").write_text("")
    (checked / "tasks.py").write_text(source)

    output = run_checker(checker, tmp_path)

    expected = readme_output(checker)
    assert output == expected


def run_checker(checker: str, folder: Path) -> list[str]:
    bin_dir = Path(sys.executable).parent
    if checker == "mypy":
        command = [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(ROOT / "mypy.ini"),
            "--no-incremental",
            "shop/tasks.py",
        ]
    else:
        command = [str(bin_dir / "pyright"), "--pythonpath", sys.executable, "shop/tasks.py"]
    completed = subprocess.run(
        command,
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        env={"PYTHONPATH": str(ROOT), "PATH": str(bin_dir) + ":/usr/bin:/bin"},
    )
    lines = [line.strip() for line in completed.stdout.splitlines()]
    return [line.replace(str(folder) + "/", "") for line in lines if "error:" in line]


def readme_output(checker: str) -> list[str]:
    text = snippets()["mypy-output"]
    section = text.split(f"$ {checker} shop/tasks.py\n")[1].split("$ ")[0]
    return [line.strip() for line in section.splitlines() if "error:" in line]
