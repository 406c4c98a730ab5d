"""The authors' published checkpoints (``K.pt`` on the Hugging Face Hub, one per training size) read as
data, never as code.

A ``K.pt`` is a ``torch.save`` pickle: ``{"ema": state dict, "model": state dict, "opt": ..., "args":
their parsed options, "iterations": int}`` (their ``train_unet.py``). Their network (``src/models/ddpm.py``
of their repository, a port of Ho et al.'s DDPM U-Net) is the architecture of diffusers' ``UNet2DModel``
as :func:`mem2gen.models.networks.build_unet` configures it, its modules held in one flat list
(``all_modules.<i>``): :func:`authors_to_diffusers` renames its weights onto ``UNet2DModel``'s. Unpickling runs
whatever the file
names, so :func:`read` unpickles with an allowlist: torch's tensor-rebuild functions and plain
containers as themselves, the classes of the authors' option objects (``argparse.Namespace``, their
``parse_utils`` / ``simple_parsing`` dataclasses, paths) as inert :class:`Record` objects holding
their fields, and anything else — ``os.system``, ``builtins.eval``, any other callable — refused with
its name. Why not ``torch.load(weights_only=True)``: it refuses the ``args`` object too, and the
options are what say which network the weights belong to.
"""
from __future__ import annotations

import pickle
import types
from pathlib import Path

from ..errors import Mem2genError, check
from ..io.datasets import UNetArch

# torch's own rebuild functions and containers a state dict pickles with (storages are resolved by torch)
_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor"), ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"), ("torch", "Size"), ("torch", "float32"), ("torch", "float16"),
    ("torch", "bfloat16"), ("torch", "device"), ("collections", "OrderedDict"),
}
# modules whose classes are read as inert records: the authors' option objects and what they hold
_RECORD_MODULES = ("argparse", "parse_utils", "simple_parsing", "pathlib", "__main__", "src", "train_utils")


class Record:
    """An object of a class from the file, kept as data: its fields (``vars``) and, for objects pickled
    by a constructor call, the arguments. ``origin`` names the class; nothing of it is imported."""

    origin = "?"

    def __init__(self, *args, **kw):
        self.__dict__.update(kw)
        if args:
            self.__dict__["_args"] = args

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 2:  # (dict, slots)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.__dict__.update(state if isinstance(state, dict) else {"_state": state})

    def __getattr__(self, name):
        raise AttributeError(f"{self.origin} read from the checkpoint has no field {name!r}")

    def __repr__(self):
        return f"{self.origin}({', '.join(f'{k}={v!r}' for k, v in vars(self).items())})"


class _Unpickler(pickle.Unpickler):
    def find_class(self, module, name):
        module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)  # protocol 2's names
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        if module.split(".")[0] in _RECORD_MODULES:
            return type(name, (Record,), {"origin": f"{module}.{name}"})
        raise pickle.UnpicklingError(f"refused: the file asks to load {module}.{name}, which could run code")


_SAFE_PICKLE = types.ModuleType("mem2gen_safe_pickle")
_SAFE_PICKLE.Unpickler = _Unpickler
_SAFE_PICKLE.load = lambda f, **kw: _Unpickler(f, **kw).load()
_SAFE_PICKLE.__name__ = "mem2gen_safe_pickle"


def read(path) -> dict:
    """The contents of a ``torch.save`` file with nothing executed (see the module's docstring):
    tensors, containers and :class:`Record` objects."""
    import torch

    path = Path(path)
    check(path.is_file(), f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location="cpu", pickle_module=_SAFE_PICKLE, weights_only=False)
    except pickle.UnpicklingError as e:
        raise Mem2genError(f"{path}: {e}") from None
    except Exception as e:
        why = f"{type(e).__name__}: {str(e).splitlines()[0]}"
        raise Mem2genError(f"{path}: not a readable torch checkpoint ({why})") from None
    return obj


def field(obj, *names, default=None):
    """``obj.names[0]`` or the first of ``names`` it has (records and dicts alike)."""
    for n in names:
        if isinstance(obj, dict) and n in obj:
            return obj[n]
        if isinstance(obj, Record) and n in vars(obj):
            return vars(obj)[n]
    return default


def authors_arch(args):
    """The :class:`mem2gen.io.datasets.UNetArch` named by a checkpoint's ``args.model`` (their ``Unet``
    options: image_size, in_channels, dim, dim_mults, attn_resolutions, num_res_blocks, dropout)."""
    model = field(args, "model")
    check(model is not None, "the checkpoint's args hold no model options (args.model)")
    need = ("image_size", "in_channels", "dim", "dim_mults")
    missing = [n for n in need if field(model, n) is None]
    check(not missing, f"the checkpoint's args.model lacks {', '.join(missing)}")

    def ints(v):
        return tuple(int(x) for x in (v.split(",") if isinstance(v, str) else v))

    return UNetArch(sample_size=int(field(model, "image_size")), channels=int(field(model, "in_channels")),
                    base=int(field(model, "dim")), multipliers=ints(field(model, "dim_mults")),
                    layers_per_block=int(field(model, "num_res_blocks", default=2)),
                    attention_resolutions=ints(field(model, "attn_resolutions", default=(16,))),
                    dropout=float(field(model, "dropout", default=0.0)))


def strip_prefix(state: dict) -> dict:
    """State-dict keys without a DDP ``module.`` or a wrapper's ``unet.`` prefix."""
    for prefix in ("module.", "unet."):
        if state and all(k.startswith(prefix) for k in state):
            state = {k[len(prefix):]: v for k, v in state.items()}
    return state


# A ResnetBlockDDPM / AttnBlock / Up- or Downsample of theirs → the same part of UNet2DModel. NIN layers are
# 1x1 maps stored (in, out): a Linear's weight is their transpose, a 1x1 conv's that with two unit dims.
_RESNET = {"GroupNorm_0": "norm1", "Conv_0": "conv1", "Dense_0": "time_emb_proj", "GroupNorm_1": "norm2",
           "Conv_1": "conv2", "NIN_0": "conv_shortcut"}
_ATTN = {"GroupNorm_0": "group_norm", "NIN_0": "to_q", "NIN_1": "to_k", "NIN_2": "to_v", "NIN_3": "to_out.0"}
_SAMPLE = {"Conv_0": "conv"}


def _authors_modules(arch: UNetArch) -> list[tuple[str, dict | None]]:
    """UNet2DModel's name for each entry of their ``all_modules`` list, in their order (their
    ``DDPM.__init__``), with the renaming of the entry's own parts (None: a plain layer)."""
    n = len(arch.multipliers)
    res = [arch.sample_size // 2 ** i for i in range(n)]
    out = [("time_embedding.linear_1", None), ("time_embedding.linear_2", None), ("conv_in", None)]
    for i in range(n):
        for b in range(arch.layers_per_block):
            out.append((f"down_blocks.{i}.resnets.{b}", _RESNET))
            if res[i] in arch.attention_resolutions:
                out.append((f"down_blocks.{i}.attentions.{b}", _ATTN))
        if i != n - 1:
            out.append((f"down_blocks.{i}.downsamplers.0", _SAMPLE))
    out += [("mid_block.resnets.0", _RESNET), ("mid_block.attentions.0", _ATTN), ("mid_block.resnets.1", _RESNET)]
    for i in reversed(range(n)):
        j = n - 1 - i
        for b in range(arch.layers_per_block + 1):
            out.append((f"up_blocks.{j}.resnets.{b}", _RESNET))
            if res[i] in arch.attention_resolutions:
                out.append((f"up_blocks.{j}.attentions.{b}", _ATTN))
        if i != 0:
            out.append((f"up_blocks.{j}.upsamplers.0", _SAMPLE))
    return out + [("conv_norm_out", None), ("conv_out", None)]


def authors_to_diffusers(state: dict, arch: UNetArch, target: dict) -> dict:
    """Their state dict (``all_modules.<i>.<part>.<param>``) as ``UNet2DModel``'s (``target``: its state
    dict, for names and shapes). Every tensor of theirs must land on one of ``target``'s with its shape,
    and every one of ``target``'s must be filled; otherwise the first mismatch is named.

    Parameters
    ----------
    state : dict
        The authors' state dict (their ``ema`` weights).
    arch : UNetArch
        The architecture their checkpoint's ``args`` describe.
    target : dict
        A ``UNet2DModel`` state dict of that architecture.

    Returns
    -------
    dict
        ``target``'s names with the authors' tensors.
    """
    modules = _authors_modules(arch)
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        check(len(parts) >= 3 and parts[0] == "all_modules" and parts[1].isdigit() and int(parts[1]) < len(modules),
              f"weight {key!r} is not in the authors' U-Net for {arch}")
        name, rename = modules[int(parts[1])]
        if rename is None:
            check(len(parts) == 3, f"weight {key!r} is not in the authors' U-Net for {arch}")
            out[f"{name}.{parts[2]}"] = value
            continue
        check(len(parts) == 4 and parts[2] in rename, f"weight {key!r} ({parts[2]}) has no counterpart in {name}")
        new, param = f"{name}.{rename[parts[2]]}", parts[3]
        if param == "W":  # NIN: (in, out) → Linear (out, in), or a 1x1 conv (out, in, 1, 1)
            w = value.t().contiguous()
            out[f"{new}.weight"] = w[:, :, None, None] if target.get(f"{new}.weight", w).dim() == 4 else w
        else:
            out[f"{new}.{'bias' if param == 'b' else param}"] = value
    missing = sorted(set(target) - set(out))
    extra = sorted(set(out) - set(target))
    shapes = sorted(k for k in set(out) & set(target) if tuple(out[k].shape) != tuple(target[k].shape))
    bad = [f"{k} missing" for k in missing] + [f"{k} unknown" for k in extra] + [
        f"{k}: {tuple(out[k].shape)} where UNet2DModel has {tuple(target[k].shape)}" for k in shapes]
    check(not bad,
          f"the authors' weights do not fit UNet2DModel for {arch} ({len(bad)} mismatches; first: "
          f"{bad[0] if bad else ''})")
    return out
