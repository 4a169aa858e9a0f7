"""python -m zoo: list, info, table."""
import subprocess
import sys

import dataclasses

import pytest

import zoo
from zoo.cli import forward_choices, main


def test_list_prints_matching_names(capsys):
    assert main(["list", "zoo_toy*"]) == 0
    assert capsys.readouterr().out.split() == ["zoo_toy_net"]
    assert main(["list", "no_such_model*"]) == 1


def test_info_shows_counts_tags_and_features(capsys):
    assert main(["info", "zoo_toy_net"]) == 0  # registered facts
    out = capsys.readouterr().out
    assert "25,418 (registered" in out and ".hub: zoo-test/toy-net" in out and "/32" in out and "GMACs" not in out
    assert main(["info", "zoo_toy_net", "--measure"]) == 0  # built on meta and counted
    out = capsys.readouterr().out
    assert "25,418" in out and "exact" in out and "GMACs" in out and "ch /32" in out


def test_info_unknown_name_suggests(capsys):
    assert main(["info", "zoo_toy_nett"]) == 2
    assert "Did you mean: zoo_toy_net" in capsys.readouterr().err


def _table_row(out, name):
    return next(line for line in out.splitlines() if line.startswith(name + " "))


def test_table_counts_every_model_and_runs_one_forward_per_family(capsys):
    assert main(["table", "zoo_toy*", "--no-progress"]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert "GMACs" not in header  # counted by --quick and --full only: a forward on meta per model
    row = _table_row(out, "zoo_toy_net")
    assert "25,418" in row and "exact" in row and "ok (1, 10) at 32x32" in row
    assert "1/1 with an official count match it exactly; 1 run on the CPU" in out


def test_table_quick_counts_gmacs_and_runs_nothing(capsys):
    assert main(["table", "zoo_toy*", "--quick", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "GMACs" in out.splitlines()[0].split()
    assert "skipped (--quick)" in _table_row(out, "zoo_toy_net") and "0 run on the CPU" in out


def test_table_full_counts_gmacs_and_runs_every_model(capsys):
    assert main(["table", "zoo_toy*", "--full", "--no-progress"]) == 0
    out = capsys.readouterr().out
    row = _table_row(out, "zoo_toy_net")
    gmacs = zoo.registry.measure("zoo_toy_net")["gmacs"]
    assert f"{gmacs:.2f}" in row and "ok (1, 10) at 32x32" in row


def test_table_flags_that_cannot_go_together(capsys):
    with pytest.raises(SystemExit):
        main(["table", "--quick", "--full"])
    assert main(["table", "zoo_toy*", "--no-progress", "--plot", "x.png"]) == 2
    assert "--quick" in capsys.readouterr().err


def test_table_reports_a_count_that_differs_and_exits_1(monkeypatch, capsys):
    entry = zoo.registry.model_entry("zoo_toy_net")
    monkeypatch.setitem(zoo.registry._ENTRIES, "zoo_toy_net",
                        dataclasses.replace(entry, official_params=entry.official_params + 1))
    assert main(["table", "zoo_toy*", "--no-progress"]) == 1
    assert "DIFFERS" in _table_row(capsys.readouterr().out, "zoo_toy_net")


def test_forward_choices_take_the_smallest_variant_of_each_family_and_task():
    rows = [dict(name="a_big", family="a", task="classification", params=20, input_size=(3, 224, 224)),
            dict(name="a_small", family="a", task="classification", params=10, input_size=(3, 224, 224)),
            dict(name="a_video", family="a", task="video", params=30, input_size=(3, 8, 224, 224)),
            dict(name="b_dense", family="b", task="dense", params=90, input_size=(3, 1024, 1024)),
            dict(name="c_restore", family="c", task="restoration", params=26, input_size=(1, 256, 192)),
            dict(name="d_broken", family="d", task="classification", params=None)]
    assert forward_choices(rows) == {"a_small": (3, 224, 224), "a_video": (3, 8, 224, 224),
                                     "b_dense": (3, 128, 128), "c_restore": (1, 128, 96)}


def test_counting_on_meta_skips_initialisation_but_not_parameters():
    """measure() builds on meta with value-only in-place ops skipped: same count as a real build."""
    import timm

    for name in ("zoo_toy_net", "zoo_toy_net_test"):
        real = timm.create_model(name)
        counted = zoo.registry.measure(name, gmacs=False)
        assert counted["params"] == sum(p.numel() for p in real.parameters())
        assert counted["gmacs"] is None
        assert counted["feature_info"] == [dict(f) for f in real.feature_info]
        assert zoo.registry.measure(name)["gmacs"] > 0


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
