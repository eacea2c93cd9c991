"""Primitives on real processes over both transports: registered memory, semaphores, channels."""

from __future__ import annotations

import pytest

from harness import run_job, transports_env

SETUP = r'''
comm = mscomm.init()
peer = 1 - RANK
mem = comm.register_memory(NBYTES)
mems = comm.exchange_memory(mem)
ch = comm.channel(peer, mem, mems[peer])
local = np.frombuffer(mem, np.uint8)
'''


def run_pair(transport: str, body: str, nbytes: int = 1 << 20, timeout: float = 90):
    code = f"NBYTES = {nbytes}\n" + SETUP + body + "\nmscomm.finalize()\n"
    return run_job(2, code, env=transports_env(transport), timeout=timeout).check_ok()


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_channel_kind_matches_transport(transport):
    job = run_pair(transport, "emit([type(ch).__name__, comm.transport_to(peer), mems[peer].is_mapped])")
    kind = "MemoryChannel" if transport == "shm" else "PortChannel"
    assert job.results(0)[0] == [kind, transport, transport == "shm"]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_put_lands_before_signal(transport):
    # Rank 0 overwrites a 64 KiB region 300 times, each time with a new value, then signals; rank
    # 1 must see the complete new value every time the signal arrives, never a mix.
    body = r'''
region = 1 << 16
if RANK == 0:
    for i in range(300):
        local[:region] = i % 251
        ch.put(0, 0, region)
        ch.signal()
        ch.wait(30)          # rank 1 consumed it; the region may be rewritten
else:
    bad = 0
    for i in range(300):
        ch.wait(30)
        bad += int(np.count_nonzero(local[:region] != i % 251))
        ch.signal()
    emit(bad)
'''
    assert run_pair(transport, body).results(1) == [0]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_flush_means_data_arrived(transport):
    # No signal at all: after flush() returns (and a bootstrap message says so), the data is there.
    body = r'''
if RANK == 0:
    local[:4096] = np.arange(4096) % 256
    ch.put(8192, 0, 4096)
    ch.flush(30)
    comm.bootstrap.send(1, 7, b"flushed")
else:
    comm.bootstrap.recv(0, 7, 30)
    emit(bool(np.array_equal(local[8192:8192 + 4096], np.arange(4096) % 256)))
'''
    assert run_pair(transport, body).results(1) == [True]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_large_transfer(transport):
    body = r'''
if RANK == 0:
    local[:] = np.random.default_rng(5).integers(0, 256, NBYTES, dtype=np.uint8)
    ch.put(0, 0, NBYTES)
    ch.signal()
    ch.flush(60)
else:
    ch.wait(60)
    want = np.random.default_rng(5).integers(0, 256, NBYTES, dtype=np.uint8)
    emit(bool(np.array_equal(local, want)))
'''
    assert run_pair(transport, body, nbytes=96 << 20, timeout=150).results(1) == [True]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_many_outstanding_signals(transport):
    body = r'''
n = 20000
if RANK == 0:
    for _ in range(n):
        ch.signal()
    ch.flush(30)
    comm.bootstrap.send(1, 1, b"done")
else:
    comm.bootstrap.recv(0, 1, 60)
    got = 0
    while ch.poll():
        got += 1
    emit([got, ch.poll()])
'''
    assert run_pair(transport, body).results(1) == [[20000, False]]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_semaphore_wait_in_both_directions(transport):
    body = r'''
sem = comm.semaphore(peer)
for i in range(500):
    if (i % 2) == RANK:
        sem.signal()
    else:
        sem.wait(30)
emit(sem.consumed)
'''
    job = run_pair(transport, body)
    assert job.results(0) == [250] and job.results(1) == [250]


def test_memory_channel_get_reads_peer_memory():
    body = r'''
local[:] = RANK + 1
comm.barrier()
if RANK == 1:
    ch.get(0, 100, 1000)     # local[0:1000] <- peer[100:1100]
    emit(sorted(set(local[:1000].tolist())) + sorted(set(local[1000:2000].tolist())))
comm.barrier()
'''
    assert run_pair("shm", body).results(1)[0] == [1, 2]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_out_of_bounds_put_is_refused(transport):
    body = r'''
for args in [(NBYTES - 10, 0, 11), (0, NBYTES, 1), (2**62, 0, 1)]:
    try:
        ch.put(*args)
        emit("accepted")
    except mscomm.InvalidArgument as e:
        emit("outside" in str(e))
'''
    assert run_pair(transport, body, nbytes=4096).results(0) == [True, True, True]


@pytest.mark.parametrize("transport", ["shm", "tcp"])
def test_wait_times_out_naming_the_peer(transport):
    body = r'''
if RANK == 1:
    t = time.monotonic()
    try:
        ch.wait(0.5)
        emit("no error")
    except mscomm.Timeout as e:
        emit([isinstance(e, TimeoutError), "rank 0" in str(e), round(time.monotonic() - t, 1) < 5])
comm.barrier()
'''
    assert run_pair(transport, body).results(1) == [[True, True, True]]


def test_memory_channel_refused_for_tcp_peer():
    body = r'''
try:
    comm.memory_channel(peer, mem, mems[peer])
    emit("accepted")
except mscomm.InvalidArgument as e:
    emit("port_channel" in str(e))
'''
    assert run_pair("tcp", body, nbytes=4096).results(0) == [True]


def test_registered_memory_is_unlinked_after_exchange():
    body = r'''
import glob
comm.barrier()   # every rank has returned from exchange_memory (and unlinked its name)
emit(glob.glob(f"/dev/shm/mscomm-{os.environ['MSCOMM_JOB_TAG']}-*"))
'''
    job = run_pair("shm", body, nbytes=4096)
    assert job.results(0) == [[]] and job.results(1) == [[]]
