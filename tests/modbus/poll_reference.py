#!/usr/bin/env python3
"""Reference for the Modbus benchmark: pymodbus's own async TCP client doing the gateway's poll
load (DEVICES devices, each reading holding registers 0..40 in one request and decoding the 20
typed values, every second) against the same `slave.py` processes. Prints one JSON object:
CPU share of one core, poll latency p50/p99 in ms, requests/s.

  python3 tests/modbus/poll_reference.py --ports 5020,5021 --devices 200 --seconds 10
"""

import argparse
import asyncio
import json
import struct
import time

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
TYPES = ["u16", "i16", "u32", "i32", "f32"]


def decode(regs):
    """The 20 typed values of the datastore (same work as the gateway's decoder)."""
    out = []
    for o, order in enumerate(ORDERS):
        for t, typ in enumerate(TYPES):
            a = o * 10 + t * 2
            if typ in ("u16", "i16"):
                b = regs[a].to_bytes(2, "big")
                if order in ("BADC", "DCBA"):
                    b = b[::-1]
                out.append(struct.unpack(">H" if typ == "u16" else ">h", b)[0])
            else:
                b = regs[a].to_bytes(2, "big") + regs[a + 1].to_bytes(2, "big")
                p, q, r, s = b
                b = {"ABCD": b, "CDAB": bytes([r, s, p, q]), "BADC": bytes([q, p, s, r]),
                     "DCBA": bytes([s, r, q, p])}[order]
                out.append(struct.unpack({"u32": ">I", "i32": ">i", "f32": ">f"}[typ], b)[0])
    return out


async def device(client, unit, stop_at, lat, counts):
    nxt = time.monotonic()
    while True:
        nxt += 1.0
        t = time.monotonic()
        if t >= stop_at:
            return
        try:
            rr = await client.read_holding_registers(0, count=40, device_id=unit)
            if not rr.isError():
                decode(rr.registers)
                lat.append(time.monotonic() - t)
                counts[0] += 1
        except Exception:  # noqa: BLE001 - a failed poll is counted, not fatal
            counts[1] += 1
        await asyncio.sleep(max(0.0, nxt - time.monotonic()))


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ports", required=True)
    ap.add_argument("--devices", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--warmup", type=float, default=3)
    args = ap.parse_args()
    from pymodbus.client import AsyncModbusTcpClient

    ports = [int(p) for p in args.ports.split(",")]
    clients = []
    for i in range(args.devices):
        c = AsyncModbusTcpClient("127.0.0.1", port=ports[i % len(ports)], timeout=1)
        await c.connect()
        clients.append(c)
    # Warm-up polls, not measured.
    warm_lat, warm_counts = [], [0, 0]
    stop = time.monotonic() + args.warmup
    await asyncio.gather(*(device(c, i % 247 + 1, stop, warm_lat, warm_counts)
                           for i, c in enumerate(clients)))
    lat, counts = [], [0, 0]
    cpu0, t0 = time.process_time(), time.monotonic()
    stop = t0 + args.seconds
    await asyncio.gather(*(device(c, i % 247 + 1, stop, lat, counts)
                           for i, c in enumerate(clients)))
    cpu1, wall = time.process_time(), time.monotonic() - t0
    for c in clients:
        c.close()
    lat.sort()
    q = lambda p: 1e3 * lat[min(len(lat) - 1, int(p * (len(lat) - 1)))] if lat else float("nan")
    import pymodbus
    print(json.dumps({
        "client": f"pymodbus {pymodbus.__version__} AsyncModbusTcpClient",
        "devices": args.devices, "seconds": wall,
        "cpu_pct": 100.0 * (cpu1 - cpu0) / wall,
        "p50_ms": q(0.5), "p99_ms": q(0.99),
        "requests_per_s": counts[0] / wall, "failed": counts[1],
    }))


asyncio.run(main())
