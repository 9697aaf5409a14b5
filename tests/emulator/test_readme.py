"""The README's "Controlling the emulator in tests" example runs as written, on the real server."""

import re
from pathlib import Path

from tests.repo.helpers import copy_aggregating_example

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text()
    section = text.split("## Controlling the emulator in tests", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_passes(server, emulator, committed_runner, tmp_path):
    committed_runner.ok("workspace", "create", "prod")
    committed_runner.ok(
        "apply", "-f", str(copy_aggregating_example(tmp_path)), "--workspace", "prod", "--yes"
    )

    def key(*args):
        created = committed_runner.ok("api-key", "create", "--description", "readme", *args)
        return created.stdout.strip()

    code = readme_example().replace("http://127.0.0.1:8328", server.base_url)
    namespace = {"ADMIN_KEY": key("--admin"), "KEY": key("--workspace", "prod"),
                 "EDITOR_KEY": key("--workspace", "prod", "--role", "editor")}  # fmt: skip
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (our own README)
    tests = [name for name in namespace if name.startswith("test_")]
    assert len(tests) == 3
    for name in tests:
        fixture = namespace["clean_emulator"].__wrapped__()
        next(fixture)
        try:
            namespace[name]()
        finally:
            next(fixture, None)
    namespace["emulator"].close()
    namespace["client"]._client.close()
