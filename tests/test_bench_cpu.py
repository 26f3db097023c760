"""The bench's CPU accounting: /proc parsing, grouping, and the events section's CPU lines."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

from loadtests.bench import cpu
from loadtests.bench.events import Latencies, chain_cpu_line, cpu_lines

HZ = cpu.CLOCK_TICKS_PER_SECOND


def test_a_stat_line_is_read_past_a_name_holding_spaces_and_parentheses():
    fields = " ".join(["S", "42"] + ["0"] * 9 + ["150", "50"] + ["0"] * 30)
    process = cpu.parse_stat(7, f"7 (odd) name (x)) {fields}")
    assert process == cpu.Process(pid=7, name="odd) name (x)", parent=42, ticks=200)


def test_machine_busy_time_leaves_out_idle_and_iowait():
    proc_stat = "cpu  100 5 20 9000 300 1 2 3 0 0\ncpu0 50 2 10 4500 150 0 1 1 0 0\n"
    assert cpu.machine_busy_ticks(proc_stat) == 100 + 5 + 20 + 1 + 2 + 3


def test_spent_charges_each_process_to_its_first_group_and_the_rest_to_other():
    def snap(busy: int, *processes: cpu.Process) -> cpu.Snapshot:
        return cpu.Snapshot({p.pid: p for p in processes}, busy)

    before = snap(
        1000,
        cpu.Process(10, "gunicorn", 1, 100),
        cpu.Process(11, "gunicorn", 10, 100),
        cpu.Process(20, "postgres", 1, 50),
        cpu.Process(30, "postgres", 1, 70),  # its pid is reused by a new process below
    )
    after = snap(
        1000 + 6 * HZ,
        cpu.Process(10, "gunicorn", 1, 100 + HZ),
        cpu.Process(11, "gunicorn", 10, 100 + 2 * HZ),
        cpu.Process(12, "gunicorn", 10, HZ),  # a worker started in between
        cpu.Process(20, "postgres", 1, 50 + HZ // 2),
        cpu.Process(30, "wrk", 1, HZ // 2),
    )
    seconds = cpu.spent(
        before,
        after,
        {
            "web": cpu.process_tree(10),
            "db": cpu.named("postgres"),
            "web too": cpu.named("gunicorn"),
        },
    )
    assert seconds == {"web": 4.0, "db": 0.5, "web too": 0.0, cpu.OTHER: 1.5}


def test_a_busy_child_process_is_charged_to_its_parents_tree():
    before = cpu.snapshot()
    busy = subprocess.Popen(
        [sys.executable, "-c", "import time\nend = time.process_time() + 0.3\n"
         "while time.process_time() < end: pass\ninput()"],
        stdin=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            after = cpu.snapshot()
            process = after.processes.get(busy.pid)
            if process is not None and process.ticks >= 0.3 * HZ - 2:
                break
            time.sleep(0.05)
        seconds = cpu.spent(before, after, {"child": lambda p: p.pid == busy.pid})
    finally:
        busy.communicate("\n", timeout=10)
    assert 0.25 <= seconds["child"] <= 1.0
    assert seconds[cpu.OTHER] >= 0


def test_the_events_section_compares_cpu_per_order_with_what_the_goal_leaves():
    lines = cpu_lines({"web": 7.0, "PostgreSQL": 1.5, "RabbitMQ": 0.5}, floor_rps=8000, cores=2)
    assert lines == [
        "  CPU per order placed: 9.00 ms on 2 cores (web 7.00, PostgreSQL 1.50, RabbitMQ 0.50; ms)",
        "  the goal's 2000 orders/s leave 1.00 ms of CPU per order",
        "  PostgreSQL + RabbitMQ alone take 2.00 ms per order: with a web tier costing nothing, "
        "1000 orders/s = ratio 0.12",
    ]


def test_a_whole_order_costs_its_web_worker_and_servers_cpu_set_against_the_peers_web():
    latency = Latencies([0.1] * 4, {"web": 0.024, "Celery worker": 0.016, "PostgreSQL": 0.008})

    line = chain_cpu_line(latency.cpu_ms_per_order(), {"web": 4.0}, orders=4)

    assert line == (
        "  CPU per order placed and consumed (4 orders, worker running): 12.00 ms "
        "(web 6.00, Celery worker 4.00, PostgreSQL 2.00; ms), textbook peer's web alone "
        "4.00 ms, ratio 3.00 to the peer (lower is cheaper)"
    )


def test_descendants_reach_a_wrapped_servers_workers_and_nothing_beside_them():
    snap = cpu.Snapshot(
        {
            p.pid: p
            for p in (
                cpu.Process(10, "runuser", 1, 0),
                cpu.Process(11, "postgres", 10, 0),  # the server under its wrapper
                cpu.Process(12, "postgres", 11, 0),  # a backend
                cpu.Process(20, "postgres", 1, 0),  # another tenant's server
            )
        },
        0,
    )

    group = cpu.descendants(snap, 10)

    assert [pid for pid, p in snap.processes.items() if group(p)] == [10, 11, 12]


def test_the_process_listening_on_a_port_is_found_by_its_socket():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]

        assert cpu.listening_pid(port) == os.getpid()
    assert cpu.listening_pid(port) is None
