"""zoo bench: the measurements are well-formed (no timing is asserted)."""
from zoo.bench import bench_one, render, sgemm_gflops


def test_bench_one_reports_throughput_flops_and_memory():
    r = bench_one("zoo_toy_net_test", batch=2, min_time=0.05, min_repeats=2)
    assert r["images_per_s"] > 0 and r["repeats"] >= 2
    assert r["gmacs"] > 0 and abs(r["gflops_per_s"] - 2 * r["gmacs"] * r["images_per_s"]) < 1e-9
    assert r["peak_rss_mb"] >= r["rss_before_mb"] > 0


def test_render_gives_ratios_against_the_reference_row():
    ref = dict(name="swin_tiny_patch4_window7_224", batch=1, input_size=(3, 224, 224), gmacs=4.5,
               images_per_s=10.0, gflops_per_s=90.0, peak_rss_mb=500.0, efficiency_vs_swin_tiny=1.0,
               speed_vs_swin_tiny=1.0, fraction_of_ceiling=0.3)
    row = dict(ref, name="zoo_toy_net", gflops_per_s=45.0, images_per_s=20.0, efficiency_vs_swin_tiny=0.5,
               speed_vs_swin_tiny=2.0)
    machine = dict(processor="cpu", cpus=2, threads=2, torch="x", sgemm_gflops=150.0, onednn_gflops=300.0,
                   ceiling_gflops=300.0)
    text = render(dict(machine=machine, reference=ref["name"], rows=[ref, row], compile=True))
    assert "150 GFLOP/s torch.mm (BLAS), 300 GFLOP/s oneDNN" in text and "torch.compile'd" in text
    assert "| `zoo_toy_net` | default | 1 |" in text and "| 0.50 |" in text and "| 30% |" in text


def test_gemm_ceilings_are_positive():
    assert sgemm_gflops(n=256, repeats=2) > 0 and sgemm_gflops(n=256, repeats=2, backend="onednn") > 0


def test_channels_last_run_reports_it():
    r = bench_one("zoo_toy_net_test", batch=1, min_time=0.01, min_repeats=1, channels_last=True)
    assert r["channels_last"] and r["images_per_s"] > 0


def test_run_brackets_the_models_with_the_reference_and_uses_the_faster_run(monkeypatch):
    import zoo.bench as bench

    speeds = iter([10.0, 20.0, 40.0])  # reference first, the model, reference last

    def fake_child(name, batch, compile, channels_last=False, optimized=False):
        return dict(name=name, batch=batch, input_size=(3, 8, 8), gmacs=1.0, images_per_s=next(speeds),
                    gflops_per_s=0.0, peak_rss_mb=1.0)

    monkeypatch.setattr(bench, "_in_child", fake_child)
    monkeypatch.setattr(bench, "sgemm_gflops", lambda **kw: 100.0)
    result = bench.run(["zoo_toy_net_test"], batches=[1], progress=False, optimized=False)
    names = [(r["name"], r.get("reference_run")) for r in result["rows"]]
    assert names == [(bench.REFERENCE, "first"), ("zoo_toy_net_test", None), (bench.REFERENCE, "last")]
    assert abs(result["rows"][1]["speed_vs_swin_tiny"] - 0.5) < 1e-12  # 20 / max(10, 40)
    assert result["reference_spread"] == {1: 4.0}
    assert "differ by 300% at batch 1" in bench.render(result)


def test_optimized_rows_compare_with_the_optimized_reference(monkeypatch):
    """Default and optimized (zoo.optimize_for_cpu) are measured for the model and the reference alike, and
    each row's ratio is against the reference in its own mode: a ratio never compares two GEMM backends."""
    import zoo.bench as bench

    speed = {(bench.REFERENCE, False): 10.0, (bench.REFERENCE, True): 20.0,
             ("zoo_toy_net_test", False): 15.0, ("zoo_toy_net_test", True): 45.0}
    seen = []

    def fake_child(name, batch, compile, channels_last=False, optimized=False):
        seen.append((name, optimized))
        return dict(name=name, batch=batch, input_size=(3, 8, 8), gmacs=1.0, optimized=optimized,
                    images_per_s=speed[(name, optimized)], gflops_per_s=2.0 * speed[(name, optimized)],
                    peak_rss_mb=1.0)

    monkeypatch.setattr(bench, "_in_child", fake_child)
    monkeypatch.setattr(bench, "sgemm_gflops", lambda **kw: 100.0)
    result = bench.run(["zoo_toy_net_test"], batches=[1], progress=False)
    assert seen.count((bench.REFERENCE, True)) == 2 and ("zoo_toy_net_test", True) in seen
    rows = {(r["name"], r["optimized"]): r for r in result["rows"] if not r.get("reference_run")}
    assert abs(rows[("zoo_toy_net_test", False)]["speed_vs_swin_tiny"] - 1.5) < 1e-12
    assert abs(rows[("zoo_toy_net_test", True)]["speed_vs_swin_tiny"] - 2.25) < 1e-12
    assert abs(rows[("zoo_toy_net_test", True)]["speedup_optimized"] - 3.0) < 1e-12
    assert "| `zoo_toy_net_test` | optimized (3.00x) | 1 |" in bench.render(result)


def test_bench_one_optimized_runs_the_optimized_model():
    r = bench_one("zoo_toy_net_test", batch=1, min_time=0.01, min_repeats=1, optimized=True)
    assert r["optimized"] and r["images_per_s"] > 0
