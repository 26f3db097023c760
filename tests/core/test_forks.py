import itertools
import os

from apps.core.forks import ProcessLocal, after_fork
from tests.core.forking import in_child


def test_a_process_local_value_is_made_once_per_process():
    numbers = itertools.count()
    local = ProcessLocal(lambda: next(numbers))
    assert local.get() == 0
    assert local.get() == 0
    # The child makes its own (1); the parent keeps its value.
    assert in_child(lambda: local.get() == 1) == 0
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
    assert in_child(lambda: calls == [os.getpid()]) == 0
    assert calls == []
