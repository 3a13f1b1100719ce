"""An extra event consumer for tests, loaded by the real worker through WIKIBOT_CONSUMERS.

It appends each change it handles (`Change.to_dict()`, with the queue's id) to a JSON-lines file,
optionally slowly, so tests can see what the worker delivered and kill it mid-stream.
"""
from __future__ import annotations

import json
import os
import time

from wikibot.gitd.change import Change


def factory(core):
    path = os.environ["RECORDER_FILE"]
    delay = float(os.environ.get("RECORDER_DELAY", "0"))

    def record(change: Change) -> None:
        time.sleep(delay)
        with open(path, "a") as f:
            f.write(json.dumps(change.to_dict()) + "\n")

    return record
