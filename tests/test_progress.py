"""Progress lines (structnet_jax/progress.py) on a hand-driven clock."""

from structnet_jax import progress as progress_lib


def test_lines_give_counts_rate_eta_and_are_rate_limited():
  now, lines = [0.0], []
  p = progress_lib.Progress("eval", total=1000, unit="images", every_s=10,
                            clock=lambda: now[0], log=lines.append)
  now[0] = 2.0
  p.update(100)   # first update: logged (50 images/s, 900 left: 0.3 min)
  now[0] = 5.0
  p.update(100)   # 3 s after the last line: not logged
  now[0] = 20.0
  p.update(300)   # 18 s after: logged (25 images/s, 500 left: 20 s)
  now[0] = 40.0
  p.update(500)
  p.done()
  assert lines[0] == "[eval] 100/1000 images (10%), 50.0 images/s, ETA 0.3 min"
  assert lines[1] == "[eval] 500/1000 images (50%), 25.0 images/s, ETA 0.3 min"
  assert lines[2] == "[eval] 1000/1000 images (100%), 25.0 images/s, done in 0.7 min"
  assert len(lines) == 3  # done() does not repeat the line just logged


def test_done_logs_the_final_count_when_the_last_update_was_quiet():
  now, lines = [0.0], []
  p = progress_lib.Progress("apf", total=10, unit="poses", every_s=10,
                            clock=lambda: now[0], log=lines.append)
  now[0] = 1.0
  p.update(4)     # logged
  now[0] = 2.0
  p.update(6)     # 1 s later: quiet
  p.done()
  assert lines == ["[apf] 4/10 poses (40%), 4.0 poses/s, ETA 0.0 min",
                   "[apf] 10/10 poses (100%), 5.0 poses/s, done in 0.0 min"]


def test_unknown_total_gives_counts_without_eta():
  now, lines = [0.0], []
  p = progress_lib.Progress("fit", None, "batches", clock=lambda: now[0],
                            log=lines.append)
  now[0] = 4.0
  p.update(8)
  assert lines == ["[fit] 8 batches, 2.0 batches/s, 0.1 min so far"]
