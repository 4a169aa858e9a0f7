"""ONNX export of one full-size model per family: does it match eager, and how fast is onnxruntime on CPU.

    PYTHONPATH=. python benchmarks/bench_export.py          # the default model per family, this checkout's zoo
    PYTHONPATH=. python benchmarks/bench_export.py --models nat_tiny,uniformer_xxs --repeats 10 --threads 2

For each model: ``torch.export`` -> ``torch.onnx.export(..., dynamo=True)`` -> onnxruntime (CPU execution
provider, graph optimisations on), batch 1, float32, at the size given below. Prints the largest error
of the onnxruntime output relative to the eager output's peak, and eager vs onnxruntime time (median of
interleaved repeats; ratio = eager time / onnxruntime time, > 1 means onnxruntime is faster). The
ratio of interleaved runs is the number to read on a shared machine.
"""
import argparse
import statistics
import time
import warnings

import torch

import zoo

# one full-size model per family (and per distinct block type), with the input size it is run at
MODELS = {
    "nat_tiny": (224, 224),
    "dinat_mini": (224, 224),  # dilated neighbourhood attention
    "uniformer_small": (224, 224),
    "uniformer_xxs": (224, 224),  # token pruning
    "shunted_tiny": (224, 224),
    "vitaev2_vsa_small": (224, 224),
    "swin_vsa_tiny": (224, 224),
    "mixformer_b0": (224, 224),
    "vitdet_base_patch16": (512, 512),  # windowed + global attention (1024 is the detection size)
    "mtunet.synapse": (224, 224),
    "restormer.rain13k": (128, 128),
}


def _time(fn, repeats):
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, onnxruntime {ort.__version__}, {args.threads} threads, batch 1, float32")
    print(f"{'model':24s} {'input':>9s} {'rel err':>9s} {'eager ms':>9s} {'ort ms':>9s} {'eager/ort':>9s}")
    for name in args.models.split(","):
        size = MODELS.get(name, (224, 224))
        torch.manual_seed(0)
        model = zoo.create_model(name).eval()
        x = torch.randn(1, 3, *size)
        try:
            with torch.no_grad():
                ref = model(x)
                program = torch.onnx.export(torch.export.export(model, (x,)), (x,), dynamo=True, verbose=False)
        except Exception as e:  # report and go on with the next model
            print(f"{name:24s} {'x'.join(map(str, size)):>9s} export failed: {type(e).__name__}: "
                  f"{str(e).splitlines()[0][:200]}", flush=True)
            continue
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        sess = ort.InferenceSession(program.model_proto.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        feed = {sess.get_inputs()[0].name: x.numpy()}
        out = torch.from_numpy(sess.run(None, feed)[0])
        err = ((out - ref).abs().max() / ref.abs().max()).item()
        eager, onnx = [], []
        with torch.no_grad():
            for _ in range(args.repeats):  # interleaved
                eager += _time(lambda: model(x), 1)
                onnx += _time(lambda: sess.run(None, feed), 1)
        ratios = [e / o for e, o in zip(eager, onnx)]
        print(f"{name:24s} {'x'.join(map(str, size)):>9s} {err:9.1e} {1e3 * statistics.median(eager):9.1f} "
              f"{1e3 * statistics.median(onnx):9.1f} {statistics.median(ratios):9.2f}", flush=True)


if __name__ == "__main__":
    main()
