"""`tectonite serve --demo` prints a key, a curl command and a snippet that work as printed."""

import re
import shlex
import subprocess
import sys
import time

from tests.conftest import start_server


def test_demo_snippets_work_as_printed(database_url, clean_database):
    server = start_server({"DATABASE_URL": database_url}, "--demo")
    try:
        marker = "or with the official Python client"
        # The banner follows the URL line in the same write; wait (bounded) for its last line.
        deadline = time.monotonic() + 10
        text = "".join(server.output)
        while "print(response.get_features_dict())" not in text and time.monotonic() < deadline:
            server.reader.join(0.05)
            text = "".join(server.output)
        key = re.search(r"API key \(consumer on \"demo\"\): (\S+)", text).group(1)

        curl = text.split("Try it with curl:")[1].split(marker)[0].replace("\\\n", " ")
        out = subprocess.run(shlex.split(curl.strip()), capture_output=True, text=True, check=True)
        # Aggregates of the transactions the demo ingested: mean, sum, count, last 3.
        assert out.stdout.startswith(
            '{"result":{"features":[true,58.35,175.05,"3",["t1","t2","t3"]]}'
        ), out.stdout

        last_line = "print(response.get_features_dict())"
        printed = text.split("(pip install tecton-client):")[1].split(last_line)[0] + last_line
        snippet = "\n".join(line.removeprefix("  ") for line in printed.strip().splitlines())
        result = subprocess.run(
            [sys.executable, "-c", snippet], capture_output=True, text=True, check=True
        )
        assert "'transaction_amount_is_high.transaction_amount_is_high': True" in result.stdout
        assert key in snippet
    finally:
        server.stop()
