"""``bareprop export MODEL --onnx out.onnx [--safetensors out.safetensors]``: the model
as an ONNX graph (raw pixels in, logits out) and/or its weights under PyTorch's names."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import ConfigError
from ..runs.layout import MODEL
from .args import check_new_file, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write a model as ONNX and/or safetensors weights",
                       description="Export a bareprop model: --onnx writes one ONNX graph "
                                   "(input 'image': raw 0..255 pixels (N, 1, 28, 28); output "
                                   "'logits'), --safetensors the weights under the names of "
                                   "the equivalent PyTorch model's state_dict. See "
                                   "docs/interop.md.")
    p.add_argument("model", help="model file (model.npz) or run folder")
    p.add_argument("--onnx", metavar="FILE", help="write the ONNX graph here")
    p.add_argument("--safetensors", metavar="FILE", help="write the weights here")
    p.add_argument("--opset", type=positive_int, default=None,
                   help="ONNX opset (default 17; 20 or newer uses the Gelu operator)")
    p.add_argument("--overwrite", action="store_true", help="replace files that exist")
    p.set_defaults(run=run)


def _targets(args) -> list[Path]:
    """The output paths, refused before any work when one exists (without --overwrite),
    is the model itself, or two are the same file."""
    outs = [Path(x) for x in (args.onnx, args.safetensors) if x]
    if not outs:
        raise ConfigError("nothing to export: give --onnx FILE and/or --safetensors FILE")
    source = Path(args.model)
    source = source / MODEL if source.is_dir() else source
    if len(outs) == 2 and outs[0].resolve() == outs[1].resolve():
        raise ConfigError("--onnx and --safetensors name the same file; give two names")
    for out in outs:
        if out.exists() and source.exists() and out.resolve() == source.resolve():
            raise ConfigError(f"{out} is the model being exported; write to another file")
        check_new_file(out, args.overwrite)
    return outs


def run(args: argparse.Namespace) -> int:
    from ..inference import Predictor

    _targets(args)
    predictor = Predictor.from_file(args.model)
    if args.onnx:
        from ..interop.onnx_export import OPSET, save_onnx

        proto = save_onnx(predictor, args.onnx, args.opset or OPSET)
        dims = [d.dim_param or d.dim_value
                for d in proto.graph.input[0].type.tensor_type.shape.dim]
        print(f"wrote {args.onnx}: input 'image' {tuple(dims)} float32 raw pixels, "
              f"output 'logits', opset {proto.opset_import[0].version}")
    if args.safetensors:
        from ..interop.weights import save_safetensors, torch_state_dict

        classes = predictor.classes
        save_safetensors(predictor.model, args.safetensors,
                         {"format": "pt", "classes": classes,
                          "input_shape": list(predictor.input_shape or [])})
        own = len(predictor.model.state_dict())
        extra = len(torch_state_dict(predictor.model)) - own     # BatchNorm's counters
        print(f"wrote {args.safetensors}: {own} arrays named as the PyTorch twin's "
              "state_dict" + (f" (plus {extra} num_batches_tracked, one per BatchNorm)"
                              if extra else ""))
    return 0
