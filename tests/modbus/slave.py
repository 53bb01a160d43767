#!/usr/bin/env python3
"""Modbus slave for the gateway's integration tests and benchmark.

Needs `pymodbus` 3.x (tested with 3.16) and `pyserial` (for RTU): `pip install "pymodbus[serial]>=3.10,<4"`.

Modes:
  normal        pymodbus server with the known datastore below (every type in every word order).
  exception     pymodbus server whose every read returns exception 2 (illegal data address).
  never-answer  raw asyncio server: accepts connections / reads the line, never replies.
  garbage       raw asyncio server: answers every request with random bytes or a short frame.

Transports: `--tcp PORT` (127.0.0.1) or `--rtu DEVICE` (e.g. one end of a socat pty pair).
Prints `ready` on stdout once listening. Answers any unit id unless `--units 1,3` is given.

The datastore (same layout for holding and input registers; the Rust tests mirror it):
  for order index o in (ABCD, CDAB, BADC, DCBA) and type index t in (u16, i16, u32, i32, f32):
  address = o * 10 + t * 2 holds VALUES[t] encoded in that order (u16/i16 use one register).
  coils 0..16 = COILS, discrete inputs 0..16 = DISCRETE.
"""

import argparse
import asyncio
import copy
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
    if args.units:
        # Only these unit ids answer; requests to others go unanswered (a dead unit on a bus).
        # pymodbus 3.16 answers unknown ids with exception 4 (a KeyError inside SimCore)
        # instead of raising NoSuchIdException, which `ignore_missing_devices` needs.
        from pymodbus.exceptions import NoSuchIdException
        from pymodbus.simulator import simcore

        lookup = simcore.SimCore._SimCore__get_device

        def get_device(self, device_id):
            if device_id not in self.devices and 0 not in self.devices:
                raise NoSuchIdException(f"device_id {device_id} is not served")
            return lookup(self, device_id)

        simcore.SimCore._SimCore__get_device = get_device
        device = [
            SimDevice(int(u), simdata=copy.deepcopy(simdata), action=action)
            for u in args.units.split(",")
        ]
    else:
        device = SimDevice(0, simdata=simdata, action=action)
    if args.tcp is not None:
        server = ModbusTcpServer(
            device, address=("127.0.0.1", args.tcp), ignore_missing_devices=True
        )
    else:
        server = ModbusSerialServer(
            device,
            framer=FramerType.RTU,
            port=args.rtu,
            baudrate=args.baud,
            ignore_missing_devices=True,
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


def crc16(data):
    crc = 0xFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return struct.pack("<H", crc)


GARBAGE_COUNTER = [0]


def garbage_reply(request, rtu):
    """Cycles through kinds of bad replies: random bytes, truncated frames, well-formed frames
    that answer too little, with the wrong function, an inconsistent byte count or the wrong
    transaction/unit id, and runs of 0xff."""
    kind = GARBAGE_COUNTER[0] % 7
    GARBAGE_COUNTER[0] += 1
    if rtu:
        unit, pdu_in = request[:1], request[1:-2]
    else:
        unit, pdu_in = request[6:7], request[7:]
    fc = pdu_in[0] if pdu_in else 3
    count = int.from_bytes(pdu_in[3:5], "big") if len(pdu_in) >= 5 else 1

    def frame(pdu, tid=None, unit_id=unit):
        if rtu:
            body = unit_id + pdu
            return body + crc16(body)
        tid = request[0:2] if tid is None else tid
        return tid + b"\x00\x00" + struct.pack(">H", len(pdu) + 1) + unit_id + pdu

    full = bytes([fc, min(count * 2, 250)]) + b"\x12\x34" * min(count, 125)
    if kind == 0:
        return os.urandom(random.randrange(1, 40))
    if kind == 1:
        return frame(full)[: random.randrange(2, 8)]
    if kind == 2:
        return frame(bytes([fc, 2, 0x12, 0x34]))  # one register whatever was asked
    if kind == 3:
        return frame(bytes([fc ^ 0x07]) + full[1:])  # wrong function code
    if kind == 4:
        return frame(bytes([fc, 200, 0x12, 0x34]))  # byte count says 200, carries 2
    if kind == 5:
        if rtu:
            return frame(full, unit_id=bytes([(unit[0] + 1) % 256]))
        return frame(full, tid=bytes([request[0] ^ 0x55, request[1]]))
    return b"\xff" * random.randrange(1, 12)


async def run_raw_tcp(args, garbage):
    async def handle(reader, writer):
        try:
            while True:
                data = await reader.read(512)
                if not data:
                    break
                if garbage:
                    writer.write(garbage_reply(data, rtu=False))
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
            port.write(garbage_reply(data, rtu=True))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp", type=int, help="TCP port on 127.0.0.1")
    g.add_argument("--rtu", help="serial device")
    p.add_argument("--baud", type=int, default=9600)
    p.add_argument("--units", help="comma-separated unit ids that answer (default: all)")
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
