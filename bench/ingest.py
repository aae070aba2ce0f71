"""Sustained HL7 ingest over MLLP: messages/s and ACK latency, durably committed.

    .venv/bin/python bench/ingest.py                # SQLite; PostgreSQL too if
    CLARION_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/ingest.py

Runs the real listener (asyncio thread) and durable inbox in this process, and the
processor in its worker process (the default, app/ingest/worker.py); the senders run in a
separate process (as the interface engine does), one thread per connection, each
waiting for its ACK before sending the next message. Three busy processes (four with
PostgreSQL) share the 2 cores, so figures move by 10-20 % from run to run. Every ACK means the raw bytes were committed
(SQLite WAL with synchronous=FULL; PostgreSQL with synchronous_commit on).

Parsers compared on the ACK path:
  msh-only  Clarion: read MSH, commit, ACK; python-hl7 full parse runs behind, off the path
  hl7       python-hl7 parses the whole message before the commit
  hl7apy    hl7apy parses the whole message before the commit
"ACKed msg/s" runs from the moment every connection is open (not from spawning the sender
process, which takes longer than a short run) to the last ACK; "processed msg/s" from the
same moment until the last message is in the patient store.

The peer (`--peer`, on by default where node and the peer are installed): Medplum's
`Hl7Server` (npm @medplum/hl7, bench/peers/medplum; `npm ci --prefix bench/peers/medplum`)
answering each message with an ACK as soon as it has parsed it, storing nothing: the
same sender process, messages and connections, in the same run; the table after the
main one sets Clarion's durable ACK rate beside it.

For a quick look at some rows: --stores sqlite --messages adt --connections 8
--parsers msh-only --no-paced (each selects a subset; see --help).

Two other measures, instead of the tables:
  --drain 2000 --messages adt,oru      processing alone: the inbox filled first, then one
                                       processor drains it (no receipt competing)
  --sustain 500 --seconds 600 --messages mixed
                                       a rate offered for ten minutes: is the backlog
                                       (received, not yet processed) bounded?
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import logs  # noqa: E402
from app.adoption.stats import percentile  # noqa: E402
from app.config import Config  # noqa: E402
from app.ingest.processor import unprocessed  # noqa: E402
from app.ingest.service import IngestService  # noqa: E402
from app.store.db import open_store  # noqa: E402
from integrations.mllp import MllpClient  # noqa: E402

LOINC = [("4548-4", "HbA1c", "%"), ("1558-6", "Fasting glucose", "mg/dL"),
         ("2345-7", "Glucose", "mg/dL"), ("39156-5", "BMI", "kg/m2"),
         ("8480-6", "Systolic BP", "mm[Hg]"), ("8462-4", "Diastolic BP", "mm[Hg]"),
         ("2093-3", "Cholesterol", "mg/dL"), ("2085-9", "HDL", "mg/dL"),
         ("13457-7", "LDL", "mg/dL"), ("2571-8", "Triglycerides", "mg/dL")]


def adt_a08(n: int, rng: random.Random) -> bytes:
    mrn = f"B{rng.randrange(500):05d}"
    return "\r".join([
        f"MSH|^~\\&|ADT|HOSP|CLARION|WS|20260105080000||ADT^A08^ADT_A01|BA{n}|P|2.5.1",
        "EVN|A08|20260105080000",
        f"PID|1||{mrn}^^^HOSP^MR~{n}^^^SSA^SS||Synthetic^Pat{n % 97}^Q||19600101|F|||"
        "1 Main St^^Town^ST^00000||555-0100",
        f"PV1|1|O|CLINIC^{n % 9}^1^HOSP||||D{n % 13}^Doc^Tor|||||||||||||V{n}",
        "DG1|1||I10^Essential hypertension^I10||20250101|F"]).encode() + b"\r"


def oru_r01(n: int, rng: random.Random, results: int = 20) -> bytes:
    mrn = f"B{rng.randrange(500):05d}"
    segments = [
        f"MSH|^~\\&|LAB|HOSP|CLARION|WS|20260105080000||ORU^R01^ORU_R01|BO{n}|P|2.5.1",
        f"PID|1||{mrn}^^^HOSP^MR||Synthetic^Pat{n % 97}||19600101|F",
        f"PV1|1|O|CLINIC^1^1^HOSP||||||||||||||||V{n}",
        f"ORC|RE|P{n}|F{n}", f"OBR|1|P{n}|F{n}|24331-1^Panel^LN|||20260105070000"]
    for i in range(results):
        code, name, unit = LOINC[i % len(LOINC)]
        segments.append(f"OBX|{i + 1}|NM|{code}^{name}^LN|{i // len(LOINC) + 1}|"
                        f"{rng.uniform(1, 200):.1f}|{unit}|1-200|N|||F|||20260105070000")
    return "\r".join(segments).encode() + b"\r"


def send_all_paced(port: int, payloads: list[bytes], connections: int, rate: float | None,
                   results: Any) -> None:
    """In the sender process: `connections` threads, each waiting for its ACK.

    The clock starts when every connection is open (not when the process was spawned):
    puts (latencies, errors, first send, last ACK), times on the system-wide monotonic
    clock that time.perf_counter reads on Linux, so the parent can compare them."""
    _send(port, connections, rate, lambda index: payloads[index::connections], results)


def send_generated(port: int, kind: str, rate: float, seconds: float, connections: int,
                   results: Any) -> None:
    """`send_all_paced` for `rate` msg/s during `seconds`, each thread making its messages
    as it goes (ten minutes at 500/s are too many to hold)."""
    make = {"adt": adt_a08, "oru": oru_r01, "mixed": mixed}[kind]

    def made(index: int) -> Iterator[bytes]:
        rng = random.Random(index)
        return (make(n, rng) for n in range(index, int(rate * seconds), connections))

    _send(port, connections, rate, made, results)


def _send(port: int, connections: int, rate: float | None,
          messages: Callable[[int], Iterable[bytes]], results: Any) -> None:
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[str] = []
    ready = threading.Barrier(connections + 1)
    finished: list[float] = []

    def sender(index: int) -> None:
        local: list[float] = []
        interval = connections / rate if rate else 0.0
        try:
            with MllpClient("127.0.0.1", port) as client:
                ready.wait(timeout=60)
                next_at = time.perf_counter()
                for payload in messages(index):
                    if interval:
                        delay = next_at - time.perf_counter()
                        if delay > 0:
                            time.sleep(delay)
                        next_at += interval
                    t0 = time.perf_counter()
                    ack = client.send(payload)
                    local.append((time.perf_counter() - t0) * 1000)
                    if b"|AA|" not in ack:
                        errors.append(f"unexpected ACK: {ack[:200]!r}")
                        return
        except (OSError, threading.BrokenBarrierError) as exc:
            errors.append(str(exc))
        with lock:
            latencies.extend(local)
            finished.append(time.perf_counter())

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    ready.wait(timeout=60)
    first_send = time.perf_counter()
    for t in threads:
        t.join()
    results.put((latencies, "; ".join(errors[:3]), first_send, max(finished)))


def mixed(n: int, rng: random.Random) -> bytes:
    """Half admissions and updates, half 20-OBX results, interleaved."""
    return adt_a08(n, rng) if n % 2 else oru_r01(n, rng)


WORKERS = 2  # --workers: processing worker processes on PostgreSQL ([ingest] workers)


def receiver(store_kind: str, pg_url: str | None, folder: Path
             ) -> tuple[Store, Engine, IngestService]:
    """A fresh store and the ingest service on it (port chosen by the system)."""
    store = Store(store_kind, pg_url, folder)
    config = Config()
    config.paths.data_dir = str(folder)
    config.database.url = store.url
    config.listener.port = 0
    config.ingest.feed_timezone = "UTC"
    config.ingest.workers = WORKERS if store_kind == "postgresql" else 1
    engine = open_store(store.url)
    return store, engine, IngestService(config, engine)


def processed_and_stopped(store: Store, engine: Engine, service: IngestService) -> float:
    """Wait until every received message is processed, then stop the receiver and drop its
    store. Returns when (time.perf_counter) the last one was processed."""
    while unprocessed(engine):
        time.sleep(0.02)
    done = time.perf_counter()
    service.stop()
    engine.dispose()
    store.drop()
    return done


def sustain(kind: str, rate: float, seconds: float, store_kind: str, pg_url: str | None,
            folder: Path, connections: int = 8) -> None:
    """`rate` msg/s offered for `seconds`: the backlog (received, not yet processed) each
    30 s, and how it moved over the second half (bounded: it does not grow)."""
    store, engine, service = receiver(store_kind, pg_url, folder)
    server = service.start_in_thread()
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    proc = ctx.Process(target=send_generated,
                       args=(server.bound_port, kind, rate, seconds, connections, results))
    proc.start()
    samples: list[tuple[float, int]] = []
    begun = time.perf_counter()
    print(f"\n{kind} at {rate:.0f} msg/s offered for {seconds:.0f} s, {store_kind}, "
          f"{connections} connections\n")
    print("| elapsed s | received, not processed |")
    print("|---:|---:|", flush=True)
    while True:  # the sender's results are read as they come (it cannot exit before)
        try:
            latencies, error, started, ended = results.get(timeout=1.0)
            break
        except queue.Empty:
            if not proc.is_alive():
                raise RuntimeError("the sender process died") from None
        elapsed = time.perf_counter() - begun
        backlog = unprocessed(engine)
        samples.append((elapsed, backlog))
        if len(samples) % 30 == 0:
            print(f"| {elapsed:.0f} | {backlog} |", flush=True)
    proc.join()
    drained_at = time.perf_counter()
    drain_s = processed_and_stopped(store, engine, service) - drained_at
    if error:
        raise RuntimeError(error)
    half = [b for t, b in samples if t > seconds / 2]
    grew = (half[-1] - half[0]) if len(half) > 1 else 0
    print("\n| store | message | offered msg/s | ACKed msg/s | ACK p50 ms | ACK p99 ms | "
          "backlog max | backlog at end | growth over 2nd half | drained in s |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(f"| {store_kind} | {kind} | {rate:.0f} | {len(latencies) / (ended - started):.0f} | "
          f"{statistics.median(latencies):.2f} | {percentile(latencies, 99):.2f} | "
          f"{max(b for _, b in samples)} | {samples[-1][1]} | {grew:+d} | {drain_s:.1f} |",
          flush=True)


def _drain_share(url: str, share: tuple[int, int], key: bytes, go: Any, done: Any) -> None:
    """In a worker process: process this share of the inbox, then say how long it took."""
    from app.config import IngestConfig
    from app.ingest.processor import Processor

    logs.set_pseudonym_key(key)
    engine = open_store(url)
    processor = Processor(engine, IngestConfig(feed_timezone="UTC"), share=share)
    go.wait()
    while processor.process_and_tend():
        pass
    done.put(time.perf_counter())
    engine.dispose()


def drain(kind: str, make: Callable[[int, random.Random], bytes], total: int,
          store_kind: str, pg_url: str | None, folder: Path) -> float:
    """Processing alone: `total` messages put in the inbox first (no socket), each with
    its patient key as the listener reads it, then one processor in this process (or,
    with --workers N on PostgreSQL, N worker processes, each its share of the patients)
    drains it. Returns msg/s."""
    from app.config import IngestConfig
    from app.ingest.inbox import DurableInbox
    from app.ingest.processor import Processor
    from app.ingest.service import receipt_key
    from integrations.hl7.receipt import assess
    from integrations.hl7.routing import read_routing

    store = Store(store_kind, pg_url, folder)
    engine = open_store(store.url)
    inbox = DurableInbox(engine)
    inbox.start()
    rng = random.Random(7)
    waiting = []
    for raw in (make(n, rng) for n in range(total)):
        assessment = assess(raw)
        assert assessment.header is not None
        waiting.append(inbox.submit(raw, "bench", assessment,
                                    patient_key=receipt_key(read_routing(assessment.header))))
    for future in waiting:
        future.result()
    inbox.stop()
    workers = WORKERS if store_kind == "postgresql" else 1
    if workers == 1:
        processor = Processor(engine, IngestConfig(feed_timezone="UTC"))
        started = time.perf_counter()
        while processor.process_and_tend():
            pass
        elapsed = time.perf_counter() - started
    else:
        ctx = multiprocessing.get_context("spawn")
        go, done = ctx.Event(), ctx.Queue()
        procs = [ctx.Process(target=_drain_share, args=(store.url, (k, workers),
                                                        logs.pseudonym_key(), go, done))
                 for k in range(workers)]
        for proc in procs:
            proc.start()
        time.sleep(5.0)  # started and connected: the clock runs from the go
        started = time.perf_counter()
        go.set()
        elapsed = max(done.get(timeout=3600) for _ in procs) - started
        for proc in procs:
            proc.join()
    left = unprocessed(engine)
    engine.dispose()
    store.drop()
    if left:
        raise RuntimeError(f"{left} {kind} messages were left unprocessed")
    return total / elapsed


class Store:
    """A fresh store per run: a SQLite file, or a schema on the PostgreSQL server."""

    def __init__(self, kind: str, pg_url: str | None, folder: Path) -> None:
        self.kind = kind
        self._schema = ""
        self._pg_url = pg_url
        if kind == "sqlite":
            self.url = f"sqlite:///{folder / f'{uuid.uuid4().hex}.db'}"
        else:
            assert pg_url
            self._schema = f"bench_{uuid.uuid4().hex[:10]}"
            with create_engine(pg_url).begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{self._schema}"'))
            self.url = make_url(pg_url).update_query_dict(
                {"options": f"-csearch_path={self._schema}"}).render_as_string(False)

    def drop(self) -> None:
        if self._schema and self._pg_url:
            engine = create_engine(self._pg_url)
            with engine.begin() as conn:
                conn.execute(text(f'DROP SCHEMA "{self._schema}" CASCADE'))
            engine.dispose()


def receipt_parser(name: str) -> Callable[[bytes], object] | None:
    if name == "msh-only":
        return None
    from integrations.hl7.header import read_header
    if name == "hl7":
        import hl7
        return lambda raw: hl7.parse(read_header(raw).text)
    from hl7apy.parser import parse_message
    return lambda raw: parse_message(read_header(raw).text, find_groups=True)


def run(kind: str, make: Callable[[int, random.Random], bytes], connections: int, total: int,
        store_kind: str, parser: str, pg_url: str | None, folder: Path,
        rate: float | None = None) -> dict[str, float]:
    store, engine, service = receiver(store_kind, pg_url, folder)
    parse = receipt_parser(parser)
    if parse is not None:
        inner = service.handle

        async def parsing_handle(raw: bytes, peer: str) -> bytes:
            parse(raw)  # on the event loop, before the commit and the ACK
            return await inner(raw, peer)

        service.handle = parsing_handle  # type: ignore[method-assign]
    server = service.start_in_thread()
    rng = random.Random(7)
    payloads = [make(n, rng) for n in range(total)]
    # The senders are another process, as the interface engine is: they must not share
    # this process's GIL with the receiver.
    ctx = multiprocessing.get_context("spawn")
    results: Any = ctx.Queue()
    proc = ctx.Process(target=send_all_paced,
                       args=(server.bound_port, payloads, connections, rate, results))
    proc.start()
    latencies, error, started, last_ack = results.get(timeout=3600)
    proc.join()
    if error:
        raise RuntimeError(error)
    acked_s = last_ack - started
    processed_s = processed_and_stopped(store, engine, service) - started
    return {"msgs": total, "ack_per_s": total / acked_s, "processed_per_s": total / processed_s,
            "p50": statistics.median(latencies), "p99": percentile(latencies, 99),
            "max": max(latencies)}


PEER = Path(__file__).resolve().parent / "peers" / "medplum"


def peer_available() -> str:
    """'' when the Medplum peer can run here, else why not (and the command that fixes it)."""
    import shutil

    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs npm)"
    if not (PEER / "node_modules" / "@medplum" / "hl7").exists():
        return f"the peer is not installed (npm ci --prefix {PEER.relative_to(Path.cwd())})"
    return ""


def run_peer(make: Callable[[int, random.Random], bytes], connections: int,
             total: int) -> dict[str, float]:
    """Medplum's Hl7Server, in node, acknowledging each message at once (nothing stored),
    timed by the same sender as `run`."""
    import subprocess

    node = subprocess.Popen(["node", str(PEER / "server.mjs"), "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        assert node.stdout is not None
        line = node.stdout.readline().split()
        if line[:1] != ["ready"]:
            raise RuntimeError(f"the Medplum peer did not start: {line}")
        rng = random.Random(7)
        payloads = [make(n, rng) for n in range(total)]
        ctx = multiprocessing.get_context("spawn")
        results: Any = ctx.Queue()
        proc = ctx.Process(target=send_all_paced,
                           args=(int(line[1]), payloads, connections, None, results))
        proc.start()
        latencies, error, started, last_ack = results.get(timeout=3600)
        proc.join()
        if error:
            raise RuntimeError(error)
    finally:
        node.terminate()
        node.wait(10)
    return {"ack_per_s": total / (last_ack - started), "p50": statistics.median(latencies),
            "p99": percentile(latencies, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--total", type=int, default=3000, help="messages per run")
    parser.add_argument("--hl7apy-total", type=int, default=300,
                        help="messages per hl7apy run (it is ~20x slower)")
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    parser.add_argument("--stores", default="sqlite,postgresql")
    parser.add_argument("--parsers", default="msh-only,hl7,hl7apy",
                        help="ACK-path parsers to run (a subset for a quick look)")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--messages", default="adt,oru", help="message kinds to run")
    parser.add_argument("--no-paced", action="store_true", help="skip the 200/s rows")
    parser.add_argument("--no-peer", action="store_true",
                        help="skip the comparison with Medplum's Hl7Server")
    parser.add_argument("--sustain", type=float, metavar="RATE",
                        help="instead of the tables: RATE msg/s offered for --seconds, "
                             "the backlog sampled (e.g. --sustain 500 --seconds 600 "
                             "--messages mixed --stores sqlite)")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--drain", type=int, metavar="N",
                        help="instead of the tables: processing alone, N messages stored "
                             "first and then processed, REPEAT times each (median, min, max)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2,
                        help="processing worker processes on PostgreSQL ([ingest] workers, "
                             "2 by default there; SQLite always has one)")
    args = parser.parse_args()
    global WORKERS
    WORKERS = args.workers
    if args.drain:
        logs.setup_logging("ERROR", None)
        logs.load_pseudonym_key(Path(tempfile.mkdtemp()))
        drain_url = os.environ.get("CLARION_TEST_POSTGRES_URL")
        makers = {"adt": ("ADT^A08", adt_a08), "oru": ("ORU^R01 (20 OBX)", oru_r01),
                  "mixed": ("mixed", mixed)}
        print(f"\nProcessing alone, {os.cpu_count()} cores, {args.drain} messages per run, "
              f"{args.workers} processor(s) on PostgreSQL, one on SQLite\n")
        print("| store | message | runs | msg/s median | min | max |")
        print("|---|---|---:|---:|---:|---:|", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            for store_kind in args.stores.split(","):
                if store_kind == "postgresql" and not drain_url:
                    continue
                for key in args.messages.split(","):
                    name, make = makers[key]
                    rates = [drain(key, make, args.drain, store_kind, drain_url, Path(tmp))
                             for _ in range(args.repeat)]
                    print(f"| {store_kind} | {name} | {len(rates)} | "
                          f"{statistics.median(rates):.0f} | {min(rates):.0f} | "
                          f"{max(rates):.0f} |", flush=True)
        return
    if args.sustain:
        logs.setup_logging("ERROR", None)
        logs.load_pseudonym_key(Path(tempfile.mkdtemp()))
        sustain_url = os.environ.get("CLARION_TEST_POSTGRES_URL")
        with tempfile.TemporaryDirectory() as tmp:
            for store_kind in args.stores.split(","):
                if store_kind == "postgresql" and not sustain_url:
                    print("PostgreSQL skipped: CLARION_TEST_POSTGRES_URL is not set")
                    continue
                for kind in args.messages.split(","):
                    sustain(kind, args.sustain, args.seconds, store_kind, sustain_url,
                            Path(tmp))
        return
    parsers = args.parsers.split(",")
    connection_counts = [int(c) for c in args.connections.split(",")]
    pg_url = os.environ.get("CLARION_TEST_POSTGRES_URL")
    stores = [s for s in args.stores.split(",") if s == "sqlite" or pg_url]
    logs.setup_logging("ERROR", None)
    logs.load_pseudonym_key(Path(tempfile.mkdtemp()))
    kinds = {name: make for key, name, make in (("adt", "ADT^A08", adt_a08),
                                                 ("oru", "ORU^R01 (20 OBX)", oru_r01))
             if key in args.messages.split(",")}
    print(f"\nHL7 ingest over MLLP, {os.cpu_count()} cores, ACK after durable commit\n")
    print("| store | message | conns | ACK-path parser | load | msgs | ACKed msg/s | "
          "processed msg/s | ACK p50 ms | ACK p99 ms | vs msh-only (msg/s) |")
    print("|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|", flush=True)
    base: dict[tuple[str, str, int], float] = {}

    def row(store_kind: str, kind: str, conns: int, parse: str, load: str,
            r: dict[str, float]) -> None:
        if parse == "msh-only" and load == "max":
            base[(store_kind, kind, conns)] = r["ack_per_s"]
        ratio = r["ack_per_s"] / base.get((store_kind, kind, conns), r["ack_per_s"])
        print(f"| {store_kind} | {kind} | {conns} | {parse} | {load} | {r['msgs']:.0f} | "
              f"{r['ack_per_s']:.0f} | {r['processed_per_s']:.0f} | {r['p50']:.2f} | "
              f"{r['p99']:.2f} | {ratio:.2f}x |", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for store_kind in stores:
            for kind, make in kinds.items():
                for connections in connection_counts:
                    for parse in parsers:
                        total = args.hl7apy_total if parse == "hl7apy" else args.total
                        row(store_kind, kind, connections, parse, "max",
                            run(kind, make, connections, total, store_kind, parse, pg_url,
                                folder))
                if args.no_paced:
                    continue
                paced_total = int(200 * args.paced_seconds)
                row(store_kind, kind, 8, "msh-only", "200/s",
                    run(kind, make, 8, paced_total, store_kind, "msh-only", pg_url, folder,
                        rate=200))
    if args.no_peer or "msh-only" not in parsers:
        return
    why = peer_available()
    if why:
        print(f"\nMedplum peer not run: {why}")
        return
    print("\nDurable ACKs beside a peer that stores nothing: Medplum's Hl7Server "
          "(@medplum/hl7 5.0.10, node " + os.popen("node --version").read().strip() + ")\n")
    print("| message | conns | Medplum ACK msg/s | p50 ms | p99 ms | " + " | ".join(
        f"Clarion {s} msg/s | ratio" for s in stores) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|---:|" * len(stores))
    for kind, make in kinds.items():
        for connections in connection_counts:
            peer = run_peer(make, connections, args.total)
            cells = []
            for store_kind in stores:
                ours = base.get((store_kind, kind, connections))
                cells += [f"{ours:.0f}", f"{ours / peer['ack_per_s']:.2f}x"] if ours else \
                    ["—", "—"]
            print(f"| {kind} | {connections} | {peer['ack_per_s']:.0f} | {peer['p50']:.2f} | "
                  f"{peer['p99']:.2f} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
