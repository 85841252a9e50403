"""Progress displays: a tqdm bar on a terminal, a bounded number of plain lines in a log file."""
import io
import os

from tapos.data.machinery.progress import line_every, track


def lines(text):
    assert "\r" not in text
    return text.splitlines()


def test_a_log_gets_a_line_every_tenth_and_the_final_count():
    log = io.StringIO()
    for _ in track(range(120), desc="extract", unit="clip", file=log):
        pass
    out = lines(log.getvalue())
    assert [line.split(" [")[0] for line in out] == [f"extract: {n}/120 clips ({100 * n // 120}%)"
                                                     for n in range(12, 121, 12)]
    assert out[3].startswith("extract: 48/120 clips (40%) [00:00]")


def test_the_line_schedule():
    assert line_every(120) == 12 and line_every(15) == 2 and line_every(7) == 1
    assert line_every(None) == 100 and line_every(0) == 100  # total unknown: every 100 items
    assert line_every(340, every=1) == 1  # a training loop: one line per epoch
    log = io.StringIO()
    for _ in track((i for i in range(250)), desc="scan", file=log):  # a generator: no total
        pass
    assert [line.split(" [")[0] for line in lines(log.getvalue())] == ["scan: 100 items", "scan: 200 items",
                                                                       "scan: 250 items"]
    log = io.StringIO()
    for i in track(range(15), desc="features", unit="inst", file=log):
        if i == 5:
            break  # stopped early: the count reached is the last line, once
    assert [line.split(" [")[0] for line in lines(log.getvalue())] == [
        "features: 2/15 instances (13%)", "features: 4/15 instances (26%)", "features: 5/15 instances (33%)"]


def test_manual_updates_postfix_transient_and_disabled_displays():
    log = io.StringIO()
    with track(total=10, desc="fetch", unit="video", file=log, every=3) as bar:
        bar.update(2)
        bar.set_postfix({"failed": 0, "rate": 1.23456})
        bar.update(2)  # 4: crosses 3
        bar.update(6)  # 10: the total
    assert [line.split(" [")[0] for line in lines(log.getvalue())] == ["fetch: 4/10 videos (40%)",
                                                                       "fetch: 10/10 videos (100%)"]
    assert lines(log.getvalue())[-1].endswith("] failed=0 rate=1.235")
    quiet = io.StringIO()
    assert list(track(range(30), desc="pass", file=quiet, leave=False)) == list(range(30))  # transient
    assert list(track(range(30), desc="off", file=quiet, enabled=False)) == list(range(30))
    with track(total=5, file=quiet, enabled=False) as bar:
        bar.update(5)
    assert quiet.getvalue() == ""


def test_a_terminal_gets_a_tqdm_bar():
    from tqdm import tqdm

    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w") as terminal:
            bar = track(range(3), desc="extract", unit="clip", file=terminal)
            assert isinstance(bar, tqdm)
            assert list(bar) == [0, 1, 2]
            terminal.flush()
            assert b"extract" in os.read(master, 4096)
            assert not isinstance(track(range(3), file=terminal, enabled=False), tqdm)
    finally:
        os.close(master)

