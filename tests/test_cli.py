"""python -m zoo: list, info, table."""
import subprocess
import sys

import pytest

from zoo.cli import main


def test_list_prints_matching_names(capsys):
    assert main(["list", "zoo_toy*"]) == 0
    assert capsys.readouterr().out.split() == ["zoo_toy_net"]
    assert main(["list", "no_such_model*"]) == 1


def test_info_shows_counts_tags_and_features(capsys):
    assert main(["info", "zoo_toy_net"]) == 0
    out = capsys.readouterr().out
    assert "25,418" in out and "exact" in out and ".hub: zoo-test/toy-net" in out and "/32" in out


def test_info_unknown_name_suggests(capsys):
    assert main(["info", "zoo_toy_nett"]) == 2
    assert "Did you mean: zoo_toy_net" in capsys.readouterr().err


def test_table_rows_check_official_counts_and_run_forward(capsys):
    assert main(["table", "zoo_toy*", "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("zoo_toy_net "))
    assert "25,418" in row and "exact" in row and "ok (1, 10)" in row
    assert main(["table", "zoo_toy*", "--quick", "--no-progress"]) == 0
    assert "skipped (--quick)" in capsys.readouterr().out


def test_module_entry_point_runs():
    import zoo

    expected = zoo.list_models(task="classification")  # the subprocess sees the shipped families only
    expected = [n for n in expected if not n.startswith("zoo_toy")]
    res = subprocess.run([sys.executable, "-m", "zoo", "list", "--task", "classification"],
                         capture_output=True, text=True, timeout=300)
    assert "Traceback" not in res.stderr
    assert res.returncode == (0 if expected else 1), res.stderr
    assert res.stdout.split() == expected


def test_plot_points_take_imagenet_top1_and_bench_speed():
    from zoo.cli import plot_points

    rows = [dict(name="uniformer_small", family="uniformer", gmacs=3.6),
            dict(name="restormer", family="restormer", gmacs=154.9)]  # PSNR only: not plotted
    bench = dict(rows=[dict(name="uniformer_small", batch=8, images_per_s=30.0),
                       dict(name="uniformer_small", batch=1, images_per_s=20.0)])
    points = plot_points(rows, bench, batch=8)
    assert points == [dict(family="uniformer", name="uniformer_small", top1=82.9, gmacs=3.6, images_per_s=30.0)]
    assert plot_points(rows)[0]["images_per_s"] is None


def test_table_plot_writes_a_png(tmp_path):
    import json

    pytest.importorskip("matplotlib", reason="matplotlib is in the test extra; the plot needs it")
    bench = dict(machine=dict(cpus=2, processor="x86_64", torch="2"),
                 rows=[dict(name="mixformer_b1", batch=8, images_per_s=80.0),
                       dict(name="mixformer_b2", batch=8, images_per_s=60.0)])
    (tmp_path / "bench.json").write_text(json.dumps(bench))
    out = tmp_path / "zoo.png"
    main(["table", "mixformer_b[12]", "--quick", "--no-progress", "--plot", str(out),
          "--bench-json", str(tmp_path / "bench.json")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
