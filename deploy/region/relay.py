"""A TCP relay that delays every byte by a fixed time each way: the link between regions.

``python -m deploy.region.relay --delay-ms 20 10.77.2.1:5442=10.77.1.2:5442 …``

It stands in for ``tc netem``, which this kernel lacks. Each chunk read is written to
the other side ``delay`` seconds after it arrived, in order, so a round trip costs twice
the delay while throughput is not limited. It adds no loss, no jitter and no reordering.
One relay process carries every route of one direction-pair; killing it cuts the link.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time

CHUNK = 65536


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            writer.write(data)
            await writer.drain()
        writer.close()

    sender = asyncio.ensure_future(deliver())
    try:
        while data := await reader.read(CHUNK):
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((0.0, b""))
    with contextlib.suppress(OSError):
        await sender


async def _serve(listen: tuple[str, int], target: tuple[str, int], delay: float) -> None:
    async def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*target), 5)
        except (TimeoutError, OSError):
            writer.close()
            return
        up_reader, up_writer = upstream
        await asyncio.gather(
            _pipe(reader, up_writer, delay), _pipe(up_reader, writer, delay),
            return_exceptions=True,
        )  # fmt: skip

    server = await asyncio.start_server(connected, *listen, reuse_address=True)
    async with server:
        await server.serve_forever()


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(routes: list[str], delay: float) -> None:
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set_result, None)
    tasks = []
    for route in routes:
        listen, _, target = route.partition("=")
        tasks.append(asyncio.ensure_future(_serve(_address(listen), _address(target), delay)))
    print(f"relay: {len(routes)} routes, {delay * 1000:.0f} ms each way", flush=True)
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    for task in done:
        if task is not stop and task.exception():
            raise SystemExit(f"relay: {task.exception()}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.region.relay")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("routes", nargs="+", help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = parser.parse_args(argv)
    asyncio.run(_main(args.routes, args.delay_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
