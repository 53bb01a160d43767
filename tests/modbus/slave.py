#!/usr/bin/env python3
"""Modbus slave for the gateway's integration tests and benchmark.

Needs `pymodbus` 3.x (tested with 3.16) and `pyserial` (for RTU): `pip install "pymodbus[serial]>=3.10,<4"`.

Modes:
  normal        pymodbus server with the known datastore below (every type in every word order).
  exception     pymodbus server whose every read returns exception 2 (illegal data address).
  never-answer  raw asyncio server: accepts connections / reads the line, never replies.
  garbage       raw asyncio server: answers every request with random bytes or a short frame.

Transports: `--tcp PORT` (127.0.0.1) or `--rtu DEVICE` (e.g. one end of a socat pty pair).
Prints `ready` on stdout once listening. Answers any unit id.

The datastore (same layout for holding and input registers; the Rust tests mirror it):
  for order index o in (ABCD, CDAB, BADC, DCBA) and type index t in (u16, i16, u32, i32, f32):
  address = o * 10 + t * 2 holds VALUES[t] encoded in that order (u16/i16 use one register).
  coils 0..16 = COILS, discrete inputs 0..16 = DISCRETE.
"""

import argparse
import asyncio
import os
import random
import struct
import sys

ORDERS = ["ABCD", "CDAB", "BADC", "DCBA"]
TYPES = ["u16", "i16", "u32", "i32", "f32"]
VALUES = {"u16": 54321, "i16": -12345, "u32": 3000000000, "i32": -123456789, "f32": -1234.5678}
COILS = [1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 1, 0, 0, 0, 0, 1]
DISCRETE = [0, 1, 1, 0, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0]
REGISTER_COUNT = 200


def encode(typ, value, order):
    """Registers (list of u16) holding `value` as `typ` in word/byte `order`."""
    fmt = {"u16": ">H", "i16": ">h", "u32": ">I", "i32": ">i", "f32": ">f"}[typ]
    b = struct.pack(fmt, value)  # big-endian: A B (C D)
    if len(b) == 2:
        # 16-bit values: only the byte swap matters (BADC/DCBA swap bytes).
        if order in ("BADC", "DCBA"):
            b = b[::-1]
    else:
        a, bb, c, d = b
        b = {
            "ABCD": bytes([a, bb, c, d]),
            "CDAB": bytes([c, d, a, bb]),
            "BADC": bytes([bb, a, d, c]),
            "DCBA": bytes([d, c, bb, a]),
        }[order]
    return [int.from_bytes(b[i : i + 2], "big") for i in range(0, len(b), 2)]


def registers():
    regs = [0] * REGISTER_COUNT
    for o, order in enumerate(ORDERS):
        for t, typ in enumerate(TYPES):
            addr = o * 10 + t * 2
            for i, w in enumerate(encode(typ, VALUES[typ], order)):
                regs[addr + i] = w
    # A recognisable ramp after the typed block, for planner/bench reads.
    for i in range(40, REGISTER_COUNT):
        regs[i] = i
    return regs


async def run_pymodbus(args, exception):
    from pymodbus.constants import ExcCodes
    from pymodbus.framer import FramerType
    from pymodbus.server import ModbusSerialServer, ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    regs = registers()
    simdata = (
        [SimData(0, values=[bool(v) for v in COILS] + [False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=[bool(v) for v in DISCRETE] + [False] * 16, datatype=DataType.BITS)],
        [SimData(0, values=list(regs), datatype=DataType.REGISTERS)],
        [SimData(0, values=list(regs), datatype=DataType.REGISTERS)],
    )
    action = None
    if exception:

        async def always_illegal(_fc, _start, _addr, _count, _regs, _set):
            return ExcCodes.ILLEGAL_ADDRESS

        action = always_illegal
    device = SimDevice(0, simdata=simdata, action=action)
    if args.tcp is not None:
        server = ModbusTcpServer(device, address=("127.0.0.1", args.tcp))
    else:
        server = ModbusSerialServer(
            device, framer=FramerType.RTU, port=args.rtu, baudrate=args.baud
        )
    task = asyncio.create_task(server.serve_forever())
    await announce_when_listening(args, task)
    await task


async def announce_when_listening(args, task):
    if args.tcp is not None:
        for _ in range(200):
            if task.done():
                task.result()
            try:
                _r, w = await asyncio.open_connection("127.0.0.1", args.tcp)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.02)
    else:
        await asyncio.sleep(0.3)
    print("ready", flush=True)


def garbage_reply(request):
    """Random bytes, a short frame, or a frame with a wrong length field."""
    kind = random.randrange(4)
    if kind == 0:
        return os.urandom(random.randrange(1, 40))
    if kind == 1:
        return request[: max(1, len(request) // 2)]
    if kind == 2 and len(request) >= 8:
        # Valid-looking MBAP header claiming a long body, then nothing more.
        return request[:4] + struct.pack(">H", 200) + request[6:8] + b"\x03\x02"
    return b"\xff" * random.randrange(1, 12)


async def run_raw_tcp(args, garbage):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(512)
                if not data:
                    break
                if garbage:
                    writer.write(garbage_reply(data))
                    await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.tcp)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


async def run_raw_rtu(args, garbage):
    import serial

    port = serial.Serial(args.rtu, baudrate=args.baud, timeout=0)
    loop = asyncio.get_running_loop()
    print("ready", flush=True)
    while True:
        data = await loop.run_in_executor(None, lambda: port.read(256))
        if not data:
            await asyncio.sleep(0.005)
            continue
        if garbage:
            port.write(garbage_reply(data))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", type=int, help="TCP port on 127.0.0.1")
    g.add_argument("--rtu", help="serial device")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--mode", choices=["normal", "exception", "never-answer", "garbage"], default="normal")
    args = p.parse_args()
    if args.mode in ("normal", "exception"):
        coro = run_pymodbus(args, args.mode == "exception")
    elif args.tcp is not None:
        coro = run_raw_tcp(args, args.mode == "garbage")
    else:
        coro = run_raw_rtu(args, args.mode == "garbage")
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
