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
               speed_vs_swin_tiny=1.0, fraction_of_sgemm=0.3)
    row = dict(ref, name="zoo_toy_net", gflops_per_s=45.0, images_per_s=20.0, efficiency_vs_swin_tiny=0.5,
               speed_vs_swin_tiny=2.0)
    text = render(dict(machine=dict(processor="cpu", cpus=2, threads=2, torch="x", sgemm_gflops=300.0),
                       reference=ref["name"], rows=[ref, row]))
    assert "sgemm ceiling 300 GFLOP/s" in text and "| `zoo_toy_net` | 1 |" in text and "| 0.50 |" in text


def test_sgemm_ceiling_is_positive():
    assert sgemm_gflops(n=256, repeats=2) > 0
