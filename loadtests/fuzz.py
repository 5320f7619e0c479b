"""Coverage-guided fuzzing (atheris) of what reaches the reactor: parsers, IPC, connection shell.

Targets (each a function of one ``bytes`` input; a crash is any exception they let out):

``httptools`` / ``h11``
    The HTTP parser fed the input cut at input-chosen points: nothing but
    ``ProtocolError`` may escape, and the cuts must not change the requests.
``frames``
    ``FrameDecoder`` fed the input cut anywhere (only ``IPCError``; the same frames
    however it is cut), and every decoded payload through its ``codec`` decoder
    (only ``IPCError``).
``reactor``
    The process-mode reactor's own objects driven without sockets: an
    ``HttpConnection`` fed the first part as client bytes, a ``WorkerLink`` fed
    the rest as a worker's frames (HELLO and READY first, then whatever the
    input says: random types, flags, the live session or others, request ids,
    payloads).  ``data_received`` must never raise: under uvloop an exception
    there closes the transport with a traceback in the log.

Every crash found is kept as a file in ``tests/corpus/fuzz/<target>/`` and replayed by
``tests/unit/test_fuzz.py`` forever after.

    python3 -m loadtests.fuzz --target reactor --time 600        # ten minutes
    python3 -m loadtests.fuzz --target all --runs 200000
    python3 -m loadtests.fuzz --target frames -- -max_len=4096   # more libFuzzer options
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAMES = ("httptools", "h11", "frames", "reactor")


def fuzz(target: str, libfuzzer_args: list[str]) -> None:
    import atheris

    logging.disable(logging.CRITICAL)  # the reactor logs what it refuses: noise here
    # only swserve is instrumented: instrument_all() spends a minute on every module loaded
    with atheris.instrument_imports(include=["swserve"]):
        from loadtests import fuzz_targets
    corpus = fuzz_targets.CORPUS / target
    corpus.mkdir(parents=True, exist_ok=True)
    func = fuzz_targets.TARGETS[target]
    atheris.Setup(
        [sys.argv[0], *libfuzzer_args, f"-artifact_prefix={corpus}/"],
        func,
    )
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", default="all", help=f"{', '.join(NAMES)} or all")
    parser.add_argument("--runs", type=int, default=0, help="iterations per target")
    parser.add_argument("--time", type=int, default=0, help="seconds per target")
    parser.add_argument("libfuzzer", nargs="*", help="options passed on to libFuzzer")
    args = parser.parse_args(argv)
    names = list(NAMES) if args.target == "all" else [args.target]
    extra = list(args.libfuzzer)
    if args.runs:
        extra.append(f"-runs={args.runs}")
    if args.time:
        extra.append(f"-max_total_time={args.time}")
    if len(names) == 1:
        fuzz(names[0], extra)
        return 0
    worst = 0
    for name in names:  # one process each: libFuzzer exits when it is done
        done = subprocess.run(
            [sys.executable, "-m", "loadtests.fuzz", "--target", name, "--", *extra],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
            check=False,
        )
        worst = max(worst, done.returncode)
    return worst


if __name__ == "__main__":
    sys.exit(main())
