"""The `nnc` command line: one sub-parser per command, with its flags and their help."""
from __future__ import annotations

import argparse

from ..precision import PRECISIONS


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="nnc", description="nncompiler: compile and train .nn models")
    sub = p.add_subparsers(dest="command", required=True)

    c = sub.add_parser("compile", help="check a .nn file, print a summary or a compilation stage")
    c.add_argument("file")
    c.add_argument("--emit", metavar="STAGE", help="print a stage: ir (forward), grad (forward+backward), "
                   "opt (optimised graphs), python (generated numpy code), passes (what each pass did); "
                   "backends add their own (triton: kernels, triton, ttir, ttgir, llir, ptx, cubin; mlir: mlir, vmfb)")
    c.add_argument("--backend", default=None,
                   help="numpy (the default), triton, mlir or auto; --emit of a backend's stage picks that backend")
    c.add_argument("--target", help="code generation target, e.g. sm_90 for --backend triton")
    c.add_argument("--precision", choices=PRECISIONS, help="matmul precision: fp32 (IEEE, the default), tf32 (tensor cores) or bf16 "
                   "(mixed: bf16 operands, fp32 accumulation, loss and update); overrides the train block's")
    c.add_argument("--model", help="which block, when the file has several")
    c.add_argument("-o", "--output", help="write to this file instead of standard output")

    r = sub.add_parser("run", help="train a model per its train block, or evaluate a graph block")
    r.add_argument("file")
    r.add_argument("--epochs", type=int, help="epochs to train (with --resume, the total: a checkpoint at "
                   "epoch 2 and --epochs 4 runs epochs 3 and 4)")
    r.add_argument("--batch", help="batch size, or 'all'")
    r.add_argument("--lr", type=float, help="learning rate")
    r.add_argument("--data", help="data file (CSV with a header, .npy or .npz)")
    r.add_argument("--seed", type=int)
    r.add_argument("--validate", type=float, help="fraction of the data held out for validation")
    r.add_argument("--feed", action="append", default=[], metavar="NAME=VALUE",
                   help="a graph input: a literal like [1, 2] or a .npy/.csv path")
    r.add_argument("--backend", default="numpy")
    r.add_argument("--autotune", action="store_true",
                   help="with --backend triton on a GPU: time candidate kernel configs once per shape and keep "
                        "the fastest (default: the shape table decides)")
    r.add_argument("--precision", choices=PRECISIONS, help="matmul precision: fp32 (IEEE, the default), tf32 (tensor cores) or bf16 "
                   "(mixed: bf16 operands, fp32 accumulation, loss and update); overrides the train block's")
    r.add_argument("--model", help="which block, when the file has several")
    r.add_argument("--quiet", action="store_true", help="print only the final line")
    r.add_argument("--json", action="store_true", help="print one JSON object per epoch (epoch, loss, metrics, lr)")
    r.add_argument("--lr-schedule", metavar="SPEC",
                   help="step:N:FACTOR (lr*FACTOR every N epochs), exp:RATE (lr*RATE^(epoch-1)) or cosine[:MIN_LR]")
    r.add_argument("--early-stop", type=int, metavar="PATIENCE",
                   help="stop when the monitored value has not improved for PATIENCE epochs")
    r.add_argument("--monitor", metavar="NAME", help="what early stopping watches (default val_loss, "
                   "or loss without validation data)")
    r.add_argument("--restore-best", action="store_true", help="with --early-stop: end with the best epoch's weights")
    r.add_argument("--save", metavar="CKPT.npz", help="write a checkpoint when training ends")
    r.add_argument("--save-every", type=int, metavar="N", help="with --save: also every N epochs")
    r.add_argument("--resume", metavar="CKPT.npz", help="continue from a checkpoint; --epochs counts the total")
    r.add_argument("--weights", metavar="CKPT.npz", help="start from a checkpoint's weights (fine-tuning)")
    r.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    r.add_argument("--logdir", metavar="DIR", help="write TensorBoard logs (scalars, histograms, graph) to DIR")
    r.add_argument("--plot", metavar="FILE", help="draw the training curves to FILE (.png, .svg, .pdf)")
    r.add_argument("--nan-check", action=argparse.BooleanOptionalAction, default=True,
                   help="stop on a NaN/Inf loss or parameter, naming the first non-finite op (default: on)")
    r.add_argument("--nproc", type=int, metavar="N", help="train data-parallel on N ranks on this machine "
                   "(torchrun --standalone; needs torch); see docs/distributed.md")

    g = sub.add_parser("graph", help="draw a model's graph with Graphviz (one box per layer)")
    g.add_argument("file")
    g.add_argument("-o", "--output", help="FILE.svg, .png, .pdf or .dot (default: DOT to standard output)")
    g.add_argument("--ops", action="store_true", help="one node per IR op, boxed by layer")
    g.add_argument("--grad", action="store_true", help="include the backward pass")
    g.add_argument("--model", help="which block, when the file has several")

    pr = sub.add_parser("predict", help="run a trained model on new inputs")
    pr.add_argument("file", help="a .nn program, or a model saved as .nnx (nnc export, Model.save)")
    pr.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save or Model.save")
    pr.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    pr.add_argument("--input", action="append", default=[], metavar="[NAME=]PATH",
                    help="input data: .csv/.tsv, .npy, or .npz with one array per input")
    pr.add_argument("-o", "--output", help="OUT.csv (default: CSV to standard output), .npy or .npz")
    pr.add_argument("--batch", type=int, default=4096, help="rows per forward pass (default 4096)")
    pr.add_argument("--backend", default="numpy")
    pr.add_argument("--model", help="which block, when the file has several")

    x = sub.add_parser("export", help="write a model's inference graph and weights in another format")
    x.add_argument("file")
    x.add_argument("--format", choices=("nnx", "onnx"), help="nnx: the model with its graphs, weights and train "
                   "settings, which nnc predict and nnc.load run without the .nn file; onnx: a standard ONNX "
                   "model (default: from the output's extension, nnx unless it ends .onnx)")
    x.add_argument("-o", "--output", required=True, help="the file to write")
    x.add_argument("--no-train", action="store_true", help="nnx: leave out the training graph and optimizer "
                   "state (the file predicts and evaluates but cannot be fine-tuned)")
    x.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save (default: initial weights)")
    x.add_argument("--model", help="which block, when the file has several")
    x.add_argument("--opset", type=int, default=17, help="ONNX opset to target (default 17)")

    im = sub.add_parser("import", help="write an ONNX model as a .nn graph block (weights in a side .npz)")
    im.add_argument("file", help="an .onnx model")
    im.add_argument("-o", "--output", required=True, help="the .nn file to write")
    im.add_argument("--weights", metavar="CKPT.npz", help="where its weights go, a checkpoint that "
                    "--weights and nnc.load_weights read (default: the output with .npz)")

    e = sub.add_parser("eval", help="print a trained model's loss and metrics on data")
    e.add_argument("file", help="a .nn program, or a model saved as .nnx (give --data)")
    e.add_argument("--weights", metavar="CKPT.npz", help="a checkpoint from nnc run --save or Model.save")
    e.add_argument("--allow-nonfinite", action="store_true", help="load a checkpoint even if its arrays hold NaN or Inf (refused by default)")
    e.add_argument("--data", help="data file (default: the train block's data)")
    e.add_argument("--split", choices=("all", "train", "validation"), default="all",
                   help="evaluate on all rows, or the train block's training or validation part")
    e.add_argument("--json", action="store_true", help="print a JSON object")
    e.add_argument("--backend", default="numpy")
    e.add_argument("--model", help="which block, when the file has several")

    o = sub.add_parser("opt", help="run optimisation passes on textual IR and print the result (like mlir-opt)")
    o.add_argument("file", help="a .ir file (the text `nnc compile --emit ir` prints)")
    o.add_argument("--pass", dest="passes", action="append", default=[], metavar="NAME",
                   help="run this pass (repeat for several, in order); default: the whole pipeline to a fixed point")
    o.add_argument("--records", action="store_true", help="also print what each pass changed (to standard error)")
    o.add_argument("-o", "--output", help="write to this file instead of standard output")
    return p
