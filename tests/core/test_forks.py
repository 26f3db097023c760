import itertools
import os

from apps.core.forks import ProcessLocal, after_fork


def _in_child(work) -> int:
    """Run ``work`` in a forked child; return its exit status (0 when it returned True)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os._exit(0 if work() else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_process_local_value_is_made_once_per_process():
    numbers = itertools.count()
    local = ProcessLocal(lambda: next(numbers))
    assert local.get() == 0
    assert local.get() == 0
    # The child makes its own (1); the parent keeps its value.
    assert _in_child(lambda: local.get() == 1) == 0
    assert local.get() == 0


def test_set_replaces_the_value_and_none_makes_it_anew():
    numbers = itertools.count()
    local = ProcessLocal(lambda: next(numbers))
    assert local.get() == 0
    assert local.set(41) == 0
    assert local.get() == 41
    local.set(None)
    assert local.get() == 1


def test_after_fork_runs_in_the_child_only():
    calls: list[int] = []
    after_fork(lambda: calls.append(os.getpid()))
    assert _in_child(lambda: calls == [os.getpid()]) == 0
    assert calls == []
