"""The pure helpers of bench/bench_scale.py (the benchmark itself is not a test: `make bench-scale`)."""

from __future__ import annotations

import pytest

from bench.bench_scale import markdown_table, percentile, ratio, vm_hwm_kib


def test_vm_hwm_is_read_from_proc_status_text() -> None:
    text = "Name:\tcelery\nVmPeak:\t  900000 kB\nVmHWM:\t  123456 kB\nVmRSS:\t  100000 kB\n"
    assert vm_hwm_kib(text) == 123456
    assert vm_hwm_kib("Name:\tzombie\nState:\tZ (zombie)\n") is None


def test_markdown_table_pads_columns_and_checks_widths() -> None:
    table = markdown_table(["figure", "time"], [["1 worker", "10.00 s"], ["2 workers", "6.10 s"]])
    assert table.splitlines() == [
        "| figure    | time    |",
        "| --------- | ------- |",
        "| 1 worker  | 10.00 s |",
        "| 2 workers | 6.10 s  |",
    ]
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [["only one"]])


def test_percentile_and_ratio() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 50) == 3.0
    assert percentile([1.0, 2.0], 95) == pytest.approx(1.95)
    assert percentile([7.0], 95) == 7.0
    assert ratio(6.5, 10.0) == 0.65
    assert ratio(1.0, 0.0) == float("inf")


def test_cpu_ticks_reads_utime_and_stime_past_a_command_with_spaces() -> None:
    from bench.bench_scale import cpu_ticks

    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime ...
    stat = "4242 (celery worker) x) S 1 4242 4242 0 -1 4194304 100 0 0 0 250 50 0 0 20 0 1 0"
    assert cpu_ticks(stat) == 300


def test_database_server_ports_are_read_from_urls_and_command_lines() -> None:
    from bench.bench_scale import serves_port, url_port

    assert url_port("mongodb://127.0.0.1:27027/", 27017) == 27027
    assert url_port("mongodb://localhost", 27017) == 27017
    assert url_port("postgres://loop:loop@127.0.0.1:5442/ferretdb_bench", 5432) == 5442
    ferret = ["/root/go/bin/ferretdb", "--handler=sqlite", "--listen-addr=127.0.0.1:27027", "--debug-addr=-"]
    assert serves_port(ferret, 27027) and not serves_port(ferret, 27017)
    assert serves_port(["mongod", "--bind_ip", "127.0.0.1", "--port", "27017"], 27017)
    postmaster = ["/usr/lib/postgresql/15/bin/postgres", "-D", "/x", "-c", "port=5442", "-c", "fsync=off"]
    assert serves_port(postmaster, 5442) and not serves_port(postmaster, 5432)


def test_equal_bytes_text() -> None:
    from bench.bench_scale import equal_bytes_text

    text = equal_bytes_text("3 shards", {"offline": True, "1 shard": False})
    assert text == "3 shards: == offline, != 1 shard"
