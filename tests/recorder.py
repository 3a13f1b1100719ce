"""An extra event consumer for tests, loaded by the real worker through WIKIBOT_CONSUMERS.

It appends each event it handles to a JSON-lines file, optionally slowly, so tests can see what
the worker delivered and kill it mid-stream.
"""
from __future__ import annotations

import json
import os
import time


def factory(core):
    path = os.environ["RECORDER_FILE"]
    delay = float(os.environ.get("RECORDER_DELAY", "0"))

    def record(event) -> None:
        time.sleep(delay)
        with open(path, "a") as f:
            f.write(json.dumps(event.to_dict()) + "\n")

    return record
