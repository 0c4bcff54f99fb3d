"""A loopback TCP proxy in front of MongoDB that delivers chosen writes late: the network
fault behind the import's fencing (a partition, a GC pause or a slow primary, as the server
sees it: a request that arrives seconds after it was sent, possibly after its sender gave up).

bench/chaos.sh points the workers' MONGO_URI at this proxy. Each SIGUSR1 arms it to hold the
next --per-signal client→server messages whose command is `update` or `delete` on the
collection --collection (an OP_MSG whose body starts with the element `\\x02update\\x00` or
`\\x02delete\\x00` and that collection's name; by default `transactions`: the import's fenced
batches of rows and its stale-row delete; an `update` shorter than --min-update-bytes, such as
the guard raise that begins an import, passes) for --hold-ms,
each on whatever connection it travels. A held message holds everything behind it on its
connection, as a stalled TCP stream would; other connections flow on. A held message is
delivered even if its client closed the connection meanwhile (the request still arrives).

Client→server bytes are read message by message (the wire protocol's 4-byte length prefix),
so the command name is always found at its fixed place, whatever the socket's chunking; the
replies are copied as they come.

Each SIGUSR2 toggles an outage, for a server the bench cannot stop itself (MONGO_URI): every
open connection is dropped and new ones are closed at once until the next SIGUSR2.

Prints `listening on PORT` once, then one line per held message (`held <command> ...`, with
`day <branch>|<pos>|<date>` when it is an import batch) and per
late delivery (`delivered <command> ... late`). Standard library only.

Usage: python3 hold_proxy.py --upstream-port P [--upstream-host 127.0.0.1] [--port 0]
       [--hold-ms 5000] [--per-signal 2] [--collection transactions] [--min-update-bytes 1024]
"""

import argparse
import asyncio
import signal
import struct
import sys

OP_MSG = 2013
COMMANDS = (b"update", b"delete")
# header (16) + flagBits (4) + section kind (1) + document length (4): the body's first
# element starts at 25; a document-sequence section first would push it later, so look a
# little further (no other text of a command fits in so few bytes).
LOOK_AT = 64


class Proxy:
    def __init__(self, upstream_host, upstream_port, hold_s, per_signal, collection, min_update):
        self.upstream_host = upstream_host
        self.upstream_port = upstream_port
        self.down = False
        self.open = set()
        self.hold_s = hold_s
        self.per_signal = per_signal
        self.min_update = min_update
        # A string element: type 0x02, the key, the value's length (with its NUL), the value.
        name = collection.encode() + b"\x00"
        self.patterns = [b"\x02" + c + b"\x00" + struct.pack("<i", len(name)) + name for c in COMMANDS]
        self.armed = 0
        self.held = 0
        self.connections = 0

    def arm(self):
        self.armed += self.per_signal
        say(f"armed: the next {self.armed} update/delete message(s) will be held")

    def toggle_outage(self):
        self.down = not self.down
        if self.down:
            for writer in list(self.open):
                writer.transport.abort()
        say("outage: " + ("every connection dropped, new ones refused" if self.down else "over"))

    def command_to_hold(self, message):
        """The command's name if `message` is an update/delete OP_MSG and the proxy is armed."""
        if self.armed <= 0 or len(message) < 26:
            return None
        if struct.unpack_from("<i", message, 12)[0] != OP_MSG:
            return None
        head = message[:LOOK_AT]
        for command, pattern in zip(COMMANDS, self.patterns):
            if pattern in head and (command == b"delete" or len(message) >= self.min_update):
                self.armed -= 1
                return command.decode()
        return None

    async def client(self, reader, writer):
        self.connections += 1
        conn = self.connections
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        except OSError:
            # The server is down (an outage): the client sees its connection fail.
            writer.close()
            return
        self.open.update((writer, up_writer))
        back = asyncio.create_task(copy(up_reader, writer))
        try:
            await self.forward(conn, reader, up_writer)
        finally:
            self.open.difference_update((writer, up_writer))
            await close(up_writer)
            try:
                await asyncio.wait_for(back, 5)
            except (asyncio.TimeoutError, OSError):
                back.cancel()
            await close(writer)

    async def forward(self, conn, reader, up_writer):
        """Client → server, one wire message at a time, holding the chosen ones."""
        while True:
            try:
                head = await reader.readexactly(4)
                (length,) = struct.unpack("<i", head)
                if length < 16 or length > 64 * 1024 * 1024:
                    return
                message = head + await reader.readexactly(length - 4)
            except (asyncio.IncompleteReadError, OSError):
                return
            command = self.command_to_hold(message)
            if command is not None:
                self.held += 1
                n = self.held
                day = guarded_day(message)
                say(
                    f"held {command} #{n} ({length} bytes, connection {conn}) for {self.hold_s * 1000:.0f} ms"
                    + (f" day {day}" if day else "")
                )
                await asyncio.sleep(self.hold_s)
                gone = reader.at_eof()
                say(f"delivered {command} #{n} late" + (" (its client had gone)" if gone else ""))
            try:
                up_writer.write(message)
                await up_writer.drain()
            except OSError:
                return


def guarded_day(message):
    """The day of an import batch: its first statement raises the fence guard
    `~fence|<branch>|<pos>|<date>` (see src/pipeline/import.rs); None for other messages."""
    at = message.find(b"~fence|")
    if at < 0:
        return None
    end = message.find(b"\x00", at)
    return message[at + len(b"~fence|") : end].decode("utf-8", "replace") if end > at else None


async def copy(reader, writer):
    try:
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            writer.write(chunk)
            await writer.drain()
    except OSError:
        return
    finally:
        await close(writer)


async def close(writer):
    try:
        writer.close()
        await writer.wait_closed()
    except OSError:
        pass


def say(line):
    print(line, flush=True)


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--upstream-host", default="127.0.0.1")
    parser.add_argument("--upstream-port", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--hold-ms", type=int, default=5000)
    parser.add_argument("--per-signal", type=int, default=2)
    parser.add_argument("--collection", default="transactions")
    parser.add_argument("--min-update-bytes", type=int, default=1024)
    args = parser.parse_args()
    proxy = Proxy(args.upstream_host, args.upstream_port, args.hold_ms / 1000, args.per_signal, args.collection, args.min_update_bytes)
    server = await asyncio.start_server(proxy.client, "127.0.0.1", args.port)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.arm)
    loop.add_signal_handler(signal.SIGUSR2, proxy.toggle_outage)
    stopped = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    say(f"listening on {server.sockets[0].getsockname()[1]}")
    async with server:
        await stopped.wait()
    say(f"stopped: {proxy.held} message(s) held, {proxy.connections} connection(s)")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
