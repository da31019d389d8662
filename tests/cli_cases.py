"""Run several `relunet` command lines in one process, one after another: the suite's way
to run many cases that each import TensorFlow without paying for the import each time.

Each case gets its own working folder, environment, and stdout and stderr: file
descriptors 1 and 2 point at files of its own while it runs, so what TensorFlow's and
other C libraries print is caught as it would be from a process of its own. Reads a
JSON list of {"args": [...], "cwd": DIR, "env": {NAME: VALUE or null}} on stdin; writes
a JSON list of {"code": N, "stdout": ..., "stderr": ..., "files": {...}} to the stdout
it started with, "files" being the sha256 of every file under the case's folder after
it ran (its run dir's lock aside). Not for cases that change process-wide settings that
TensorFlow reads once (threads, op determinism): those need a process of their own.
"""

import hashlib
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

from relunet import cli


def run(case: dict) -> dict:
    environ, cwd = dict(os.environ), os.getcwd()
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        os.dup2(out.fileno(), 1)
        os.dup2(err.fileno(), 2)
        try:
            for name, value in case.get("env", {}).items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            os.chdir(case["cwd"])
            try:
                code = cli.main(case["args"])
            except SystemExit as exit:  # argparse's way out
                code = exit.code
            except BaseException:  # what the user would see: the traceback, and 1
                traceback.print_exc()
                code = 1
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(environ)
        out.seek(0)
        err.seek(0)
        return {
            "code": code,
            "stdout": out.read().decode(errors="replace"),
            "stderr": err.read().decode(errors="replace"),
            "files": files(Path(case["cwd"])),
        }


def files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


if __name__ == "__main__":
    results = [run(case) for case in json.load(sys.stdin)]
    print(json.dumps(results))
