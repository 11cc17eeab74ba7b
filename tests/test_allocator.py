"""The CPU allocator settings (allocator.py): applied by configure() (the CLI's first step),
never by importing classicnets; each in a fresh Python so this process's settings do not matter."""

import os
import platform
import subprocess
import sys

import pytest

from classicnets.allocator import user_set_malloc

ON_GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

# MiB a process gives back to the system when it frees a 64 MB tensor it has filled. Resident
# memory, not page faults: the fault count of a refill also depends on whether the kernel had
# huge pages free at that moment (one CI run right after mypy counted 544 either way).
FREED_MIB_RETURNED = """
import os
import sys
import classicnets, torch
from classicnets import allocator
if sys.argv[1:] == ["configure"]:
    allocator.configure()
def resident_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
tensor = torch.empty(16 * 2**20).fill_(1.0)
held = resident_mib()
del tensor
print(round(held - resident_mib()), allocator.malloc_setting())
"""


def python_env(**overrides: str) -> dict[str, str]:
    """This environment without any malloc or huge-page setting, plus `overrides`."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("MALLOC_") and key not in ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE")
    }
    return {**env, **overrides}


def run_python(code: str, env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("0", "0")])
def test_configure_asks_for_huge_pages_unless_the_user_chose(
    given: str | None, expected: str
) -> None:
    env = python_env() if given is None else python_env(THP_MEM_ALLOC_ENABLE=given)
    code = (
        "import os, classicnets.allocator; classicnets.allocator.configure(); "
        "print(os.environ['THP_MEM_ALLOC_ENABLE'])"
    )
    assert run_python(code, env) == expected


IMPORT_EVERYTHING = """
import os
import torch, torchvision  # torch itself sets TORCHINDUCTOR_CACHE_DIR (2.14)
before = dict(os.environ)
import classicnets, classicnets.cli, classicnets.kernels, classicnets.models
import classicnets.train.loop
assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
"""


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_importing_classicnets_changes_no_environment_variable_and_no_malloc_setting() -> None:
    run_python(IMPORT_EVERYTHING, python_env())  # raises if the environment changed
    returned, setting = run_python(FREED_MIB_RETURNED, python_env()).split(" ", 1)
    assert setting.startswith("system (") and "not called" in setting
    assert int(returned) > 48  # glibc's default: a freed 64 MB block goes back to the system


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_a_freed_tensor_stays_for_reuse_after_configure() -> None:
    returned, setting = run_python(FREED_MIB_RETURNED, python_env(), "configure").split(" ", 1)
    assert setting.startswith("keep freed memory")
    assert int(returned) < 8  # kept: the next tensor of that size needs no new pages


@pytest.mark.skipif(not ON_GLIBC, reason="mallopt is glibc's")
def test_a_malloc_setting_from_the_user_is_left_alone() -> None:
    # 65536 is glibc's own default: large blocks come from mmap and go back on free.
    env = python_env(MALLOC_MMAP_MAX_="65536")
    returned, setting = run_python(FREED_MIB_RETURNED, env, "configure").split(" ", 1)
    assert setting == "system (set by the user's environment)"
    assert int(returned) > 48


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, False),
        ({"GLIBC_TUNABLES": "glibc.pthread.rseq=0"}, False),
        ({"GLIBC_TUNABLES": "glibc.malloc.mmap_max=0"}, True),
        ({"MALLOC_ARENA_MAX": "2"}, True),
    ],
)
def test_which_environments_count_as_the_users_malloc_choice(
    environ: dict[str, str], expected: bool
) -> None:
    assert user_set_malloc(environ) is expected
