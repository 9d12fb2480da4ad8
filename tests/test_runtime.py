"""The allocator setting: large blocks stay in glibc's heap instead of being mmapped per allocation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = """
import ctypes, json, sys
from recsys.runtime import tune_cpu_allocator

class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL("libc.so.6")
libc.mallinfo2.restype = MallInfo2
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
applied = tune_cpu_allocator() if sys.argv[1] == "tune" else False
before = libc.mallinfo2().hblkhd
block = libc.malloc(256 << 20)  # a Beauty-sized score matrix
mmapped = libc.mallinfo2().hblkhd - before
libc.free(block)
print(json.dumps({"applied": applied, "mmapped_bytes": mmapped}))
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc allocator setting")


def _probe(mode: str, **env: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True, env={**os.environ, **env}
    )
    return json.loads(done.stdout)


@glibc_only
def test_tuned_allocator_keeps_large_blocks_in_the_heap() -> None:
    plain = _probe("plain")
    tuned = _probe("tune")
    assert plain["mmapped_bytes"] >= 256 << 20  # glibc's default: a fresh mapping for the block
    assert tuned["applied"] is True
    assert tuned["mmapped_bytes"] == 0


@glibc_only
def test_environment_variable_turns_the_setting_off() -> None:
    result = _probe("tune", RECSYS_MALLOC_TUNING="0")
    assert result["applied"] is False
    assert result["mmapped_bytes"] >= 256 << 20

