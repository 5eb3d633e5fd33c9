"""The original service's heavy endpoint, reimplemented as a plain WSGI app for Gunicorn.

Only for benchmarks, and only under its own label ("Python rewrite on Gunicorn"): comparisons
with "the original" run the real Django service instead (bench/original.sh).
The work is the original's: trial-division prime count, chained SHA-256 from b"django-load-test",
then an append + fsync + read of a shared file under a (per-process) thread lock.
"""
import hashlib
import json
import os
import threading
import time
from urllib.parse import parse_qs

IO_FILE = os.environ.get("REF_IO_FILE", "/tmp/django_load_test_io.bin")
CAP = 5 * 1024 * 1024
_io_lock = threading.Lock()


def _ensure_file():
    if not os.path.exists(IO_FILE):
        with open(IO_FILE, "wb") as f:
            f.write(os.urandom(1024 * 1024))


def _json(start_response, status, body):
    data = json.dumps(body).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def health(environ, start_response):
    return _json(start_response, "200 OK", {"status": "healthy", "timestamp": time.time()})


def cpu_io_no_db(environ, start_response):
    q = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        prime_limit = int(q.get("prime_limit", ["500000"])[-1])
        hash_rounds = int(q.get("hash_rounds", ["1000000"])[-1])
        io_kb = int(q.get("io_kb", ["128"])[-1])
    except ValueError as e:
        return _json(start_response, "400 Bad Request", {"error": str(e)})
    start = time.time()
    primes_found = 0
    for n in range(2, prime_limit):
        is_prime = True
        for i in range(2, int(n ** 0.5) + 1):
            if n % i == 0:
                is_prime = False
                break
        if is_prime:
            primes_found += 1
    value = b"django-load-test"
    for _ in range(hash_rounds):
        value = hashlib.sha256(value).digest()
    cpu_end = time.time()
    _ensure_file()
    data = os.urandom(io_kb * 1024)
    with _io_lock:
        if os.path.getsize(IO_FILE) < CAP:
            with open(IO_FILE, "ab") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
    with _io_lock:
        with open(IO_FILE, "rb") as f:
            f.read(io_kb * 1024)
    end = time.time()
    return _json(start_response, "200 OK", {
        "primes_found": primes_found,
        "prime_limit": prime_limit,
        "hash_rounds": hash_rounds,
        "io_kb": io_kb,
        "cpu_time_sec": round(cpu_end - start, 2),
        "total_time_sec": round(end - start, 2),
        "io_time_sec": round(end - cpu_end, 2),
        "pid": os.getpid(),
    })


ROUTES = {"/heavy/health/": health, "/heavy/cpu-io-no-db/": cpu_io_no_db}


def application(environ, start_response):
    handler = ROUTES.get(environ.get("PATH_INFO", ""))
    if handler is None:
        return _json(start_response, "404 Not Found", {"error": "not found"})
    return handler(environ, start_response)
