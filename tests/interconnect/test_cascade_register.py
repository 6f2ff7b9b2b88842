"""Cascade up, registration (Q13.1 interfaces to the upper platforms; Q12.1, N12.1 GB/T
28181): VIIS as a lower platform registers with a password to VIIS's own Platform class
acting as the upper, both in this process on loopback with real UDP sockets. Time is a
ManualClock shared by both sides, so a 60 s registration or a 32 s Timer F takes no real
time; the network is real."""

import asyncio
from contextlib import asynccontextmanager

from tests.interconnect.cascade_helpers import LOCAL, UPPER, add_upper, app_on, wait_for
from viis.interconnect.gb28181.cascade import Cascade
from viis.interconnect.gb28181.clock import ManualClock
from viis.interconnect.gb28181.platform import Platform, PlatformConfig


async def run_for(clock, seconds, step=0.5, real=0.01):
    """Advance the shared clock in steps, letting the sockets work between them."""
    n = int(round(seconds / step))
    for _ in range(n):
        clock.advance(step)
        await asyncio.sleep(real)


async def start_upper(clock, port=0, server_id=UPPER, password="secret", events=None,
                      keepalive=5, tcp=False):
    cfg = PlatformConfig(server_id=server_id, host="127.0.0.1", port=port, password=None,
                         passwords={} if password is None else {LOCAL: password},
                         keepalive_interval=keepalive, keepalive_misses=3,
                         min_expires=1, tcp=tcp)
    p = Platform(cfg, clock=clock,
                 on_event=(lambda ev, peer: events.append(ev)) if events is not None else None)
    await p.start()
    return p


async def settle(clock, pred, seconds=5.0, real=15.0):
    """Advance in small steps (at most ``seconds`` of clock time) until ``pred`` holds, giving
    the sockets up to ``real`` seconds on a loaded machine."""
    loop = asyncio.get_running_loop()
    end, advanced = loop.time() + real, 0.0
    while loop.time() < end:
        if pred():
            return True
        if advanced < seconds:
            clock.advance(0.1)
            advanced += 0.1
        await asyncio.sleep(0.01)
    return pred()


def registered_both(up, c):
    """The upper holds our registration and we have its 200 (so the keepalive grid started)."""
    return bool(up.peers.get(LOCAL) and up.peers[LOCAL].registered
                and all(x.registered for x in c.clients.values()))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


@asynccontextmanager
async def lower_and_upper(db, *, upper=None, cascade=None, **entry):
    """VIIS's Platform as the upper (``start_upper(**upper)``) and our Cascade with one upper
    entry for it (``add_upper(**entry)``), on one ManualClock; both stopped at the end."""
    clock = ManualClock()
    up = await start_upper(clock, **(upper or {}))
    app = app_on(db)
    add_upper(app, up.addresses[entry.get("transport", "UDP")][1], **entry)
    c = Cascade(app, host="127.0.0.1", port=0, clock=clock, **(cascade or {}))
    await c.start()
    try:
        yield clock, up, c
    finally:
        await c.stop()
        await up.stop()


def test_registers_with_password_and_keeps_alive_at_the_interval(sqlite_db):
    async def main():
        events = []
        async with lower_and_upper(sqlite_db, upper=dict(events=events), keepalive_s=5,
                                   register_expires=3600) as (clock, up, c):
            assert await settle(clock, lambda: registered_both(up, c))
            peer = up.peers[LOCAL]
            assert peer.online and peer.address[1] == c.local_port
            d = c.diagnose()[0]
            assert d["registered"] and d["state"] == "registered" and d["cause"] == ""
            assert d["expires_in_s"] > 3500
            before = peer.keepalives
            await run_for(clock, 50, step=0.5)
            await wait_for(lambda: peer.keepalives - before >= 10, 5)
            assert peer.keepalives - before == 10  # one per 5 s
            assert events == ["registered"]
            assert c.diagnose()[0]["keepalives_ok"] == peer.keepalives
        assert events[-1] == "unregistered"  # stop sends Expires: 0

    run(main())


def test_wrong_password_gives_a_diagnosable_cause_and_backs_off(sqlite_db):
    async def main():
        async with lower_and_upper(sqlite_db, upper=dict(password="the-right-one"),
                                   cascade=dict(backoff_base=2, backoff_cap=8),
                                   password="a-wrong-one") as (clock, up, c):
            cl = next(iter(c.clients.values()))
            assert await settle(clock, lambda: cl.failures >= 1)
            d = cl.diagnose()
            assert not d["registered"] and d["state"] == "backoff"
            assert "refused our credentials" in d["cause"] and LOCAL in d["cause"]
            assert "password" in d["cause"] and "a-wrong-one" not in str(d)
            assert "wrong password" in up.diagnose(LOCAL)["cause"]  # the upper's view agrees
            await run_for(clock, 30, step=0.5)
            assert cl.backoffs[:4] == [2, 4, 8, 8]  # exponential, capped

    run(main())


def test_unknown_platform_id_cause(sqlite_db):
    async def main():
        # the upper does not know our ID at all: 403 without challenge
        async with lower_and_upper(sqlite_db, upper=dict(password=None)) as (clock, up, c):
            cl = next(iter(c.clients.values()))
            assert await settle(clock, lambda: cl.failures >= 1)
            assert "does not know our platform ID" in cl.cause

    run(main())


def test_reregisters_before_expiry(sqlite_db):
    async def main():
        events = []
        async with lower_and_upper(sqlite_db, upper=dict(events=events), keepalive_s=5,
                                   register_expires=60) as (clock, up, c):
            assert await settle(clock, lambda: registered_both(up, c))
            await run_for(clock, 100, step=0.5)  # > the 60 s granted period
            assert events.count("refreshed") >= 3  # at half the period: 30, 60, 90 s
            assert "expired" not in events and up.peers[LOCAL].registered
            assert c.diagnose()[0]["registrations"] == events.count("refreshed") + 1

    run(main())


def test_recovers_after_the_upper_restarts(sqlite_db):
    """The upper restarts and forgets us: its answer to our next keepalive (403) makes us
    register again at once. Then it is down for a while: three unanswered keepalives, then
    registration attempts with exponential backoff (capped) until it is back."""
    async def main():
        clock = ManualClock()
        up = await start_upper(clock)
        port = up.addresses["UDP"][1]
        app = app_on(sqlite_db)
        add_upper(app, port, keepalive_s=5, register_expires=3600)
        c = Cascade(app, host="127.0.0.1", port=0, clock=clock, backoff_base=2, backoff_cap=16)
        await c.start()
        cl = next(iter(c.clients.values()))
        try:
            assert await settle(clock, lambda: cl.registered)
            await up.stop()
            await asyncio.sleep(0.1)  # the socket closes on the next loop turns
            up = await start_upper(clock, port=port)  # restarted: knows nothing of us
            assert await settle(clock, lambda: up.peers.get(LOCAL) and up.peers[LOCAL].registered,
                                seconds=15)
            assert cl.registrations == 2 and cl.failures == 0
            await up.stop()  # now down
            await run_for(clock, 20, step=0.5)
            assert not cl.registered and "keepalives in a row got no answer" in cl.cause \
                or "no answer from" in cl.cause
            await run_for(clock, 200, step=1)  # Timer F (32 s) per attempt, then backoff
            assert not cl.registered and "no answer from 127.0.0.1" in cl.cause
            assert cl.backoffs[:3] == [2, 4, 8] and max(cl.backoffs) == 16
            await asyncio.sleep(0.1)
            up = await start_upper(clock, port=port)
            assert await settle(clock, lambda: cl.registered, seconds=60)
            assert up.peers[LOCAL].registered and cl.failures == 0
        finally:
            await c.stop()
            await up.stop()

    run(main())


def test_several_upper_platforms_at_once(sqlite_db):
    async def main():
        clock = ManualClock()
        up1 = await start_upper(clock)
        up2 = await start_upper(clock, server_id="44010000002000000001", password="other")
        app = app_on(sqlite_db)
        add_upper(app, up1.addresses["UDP"][1])
        add_upper(app, up2.addresses["UDP"][1], server_id="44010000002000000001",
                  password="other")
        c = Cascade(app, host="127.0.0.1", port=0, clock=clock)
        await c.start()
        try:
            assert await settle(clock, lambda: all(
                u.peers.get(LOCAL) and u.peers[LOCAL].registered for u in (up1, up2))
                and all(x.registered for x in c.clients.values()))
            assert {d["server_id"] for d in c.diagnose() if d["registered"]} == \
                {UPPER, "44010000002000000001"}
            assert c.client(UPPER) is not None and c.client("44010000002000000001") is not None
        finally:
            await c.stop()
            await up1.stop()
            await up2.stop()

    run(main())


def test_registers_and_keeps_alive_over_tcp(sqlite_db):
    async def main():
        async with lower_and_upper(sqlite_db, upper=dict(tcp=True), transport="TCP",
                                   keepalive_s=5) as (clock, up, c):
            assert await settle(clock, lambda: registered_both(up, c))
            assert up.peers[LOCAL].transport == "TCP"
            await run_for(clock, 20, step=0.5)
            await wait_for(lambda: up.peers[LOCAL].keepalives >= 4, 5)  # TCP may lag the clock
            assert up.peers[LOCAL].keepalives == 4 and up.peers[LOCAL].online

    run(main())


def test_tcp_upper_that_refuses_the_connection_is_diagnosed_and_retried(sqlite_db):
    import socket

    async def main():
        with socket.socket() as sock:  # a port with nobody listening
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        clock = ManualClock()
        app = app_on(sqlite_db)
        add_upper(app, port, transport="TCP")
        c = Cascade(app, host="127.0.0.1", port=0, clock=clock, backoff_base=2, backoff_cap=8)
        await c.start()
        try:
            cl = next(iter(c.clients.values()))
            assert await settle(clock, lambda: cl.failures >= 3, seconds=30)
            assert f"no answer from 127.0.0.1:{port} over TCP" in cl.cause
            assert cl.backoffs[:3] == [2, 4, 8] and cl._task is not None and not cl._task.done()
        finally:
            await c.stop()

    run(main())


def test_the_uppers_date_is_measured_against_our_clock(sqlite_db):
    """GB time sync: the upper's Date in the 200 to REGISTER; an offset over 2 s is a warning
    (not applied to our clock: NTP owns it)."""
    async def main():
        async with lower_and_upper(sqlite_db) as (clock, up, c):
            cl = next(iter(c.clients.values()))
            assert await settle(clock, lambda: cl.registered)
            assert abs(cl.diagnose()["clock_offset_s"]) < 1.0 and not cl.warnings
            up.gb_date = lambda: "2024-05-01T12:10:00.000"  # ten minutes ahead of the shared clock
            await cl.stop(unregister=False)
            cl.state = "idle"
            await cl.start()
            assert await settle(clock, lambda: cl.registrations == 2, seconds=10)
            assert 590 < cl.diagnose()["clock_offset_s"] < 600
            assert "clock differs from ours by +5" in cl.warnings[-1]

    run(main())
