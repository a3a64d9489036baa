"""Writes PyTorch-style zip checkpoints for the tests without PyTorch.

torch.save (zip format, pickle protocol 2) writes `<name>/data.pkl`, `<name>/byteorder`,
`<name>/data/<key>` (raw little-endian storages) and `<name>/version`; tensors are pickled as
`torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, OrderedDict())`
(parameters wrapped in `torch._utils._rebuild_parameter`), storages as persistent ids
`("storage", torch.FloatStorage, key, "cpu", numel)`. This script stands in minimal fake `torch`
modules so Python's own pickle module emits exactly those opcodes.

  python3 tools/make_torch_fixtures.py

writes
  tests/fixtures/vocos-tiny/pytorch_model.bin  vocos-tiny's weights as the official Vocos file
                                               stores them (parameters, OrderedDict with _metadata)
  tests/fixtures/torch/mixed.bin               deflated entries, f16/f64/int64 storages, a
                                               transposed (strided) view, two tensors sharing one
                                               storage, a Lightning-style {"state_dict": …} wrapper
"""

import collections
import json
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def fake_torch():
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    torch._utils = utils
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils

    def rebuild_tensor_v2(*args):
        raise RuntimeError("not for loading")

    def rebuild_parameter(*args):
        raise RuntimeError("not for loading")

    for name, fn in (("_rebuild_tensor_v2", rebuild_tensor_v2), ("_rebuild_parameter", rebuild_parameter)):
        fn.__module__ = "torch._utils"
        fn.__qualname__ = name
        fn.__name__ = name
        setattr(utils, name, fn)
    storages = {}
    for name in ("FloatStorage", "HalfStorage", "DoubleStorage", "LongStorage"):
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
        storages[name] = cls
    return utils, storages


UTILS, STORAGE_CLASSES = fake_torch()
STORAGE_OF = {np.float32: "FloatStorage", np.float16: "HalfStorage", np.float64: "DoubleStorage", np.int64: "LongStorage"}


class Storage:
    def __init__(self, key, array):
        self.key = key
        self.array = np.ascontiguousarray(array).reshape(-1)


class Tensor:
    """A strided view of a Storage, pickled as torch pickles tensors."""

    def __init__(self, storage, offset, shape, stride, parameter=False):
        self.storage, self.offset, self.shape, self.stride, self.parameter = storage, offset, shape, stride, parameter

    def __reduce__(self):
        rebuilt = (self.storage, self.offset, tuple(self.shape), tuple(self.stride), False, collections.OrderedDict())
        if not self.parameter:
            return (UTILS._rebuild_tensor_v2, rebuilt)
        inner = Tensor(self.storage, self.offset, self.shape, self.stride)
        return (UTILS._rebuild_parameter, (inner, True, collections.OrderedDict()))


def contiguous(storage, shape, parameter=False):
    stride, step = [], 1
    for d in reversed(shape):
        stride.insert(0, step)
        step *= d
    return Tensor(storage, 0, list(shape), stride, parameter)


def save(obj, path, storages, compression=zipfile.ZIP_STORED, name="archive"):
    buf = __import__("io").BytesIO()

    class Pickler(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, Storage):
                cls = STORAGE_CLASSES[STORAGE_OF[o.array.dtype.type]]
                return ("storage", cls, o.key, "cpu", int(o.array.size))
            return None

    Pickler(buf, protocol=2).dump(obj)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=compression) as z:
        z.writestr(f"{name}/data.pkl", buf.getvalue())
        z.writestr(f"{name}/byteorder", "little")
        for s in storages:
            z.writestr(f"{name}/data/{s.key}", s.array.astype(s.array.dtype.newbyteorder("<")).tobytes())
        z.writestr(f"{name}/version", "3\n")


def read_safetensors(path):
    data = path.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8 : 8 + n])
    out = {}
    for key, info in header.items():
        if key == "__metadata__":
            continue
        assert info["dtype"] == "F32"
        a, b = info["data_offsets"]
        out[key] = np.frombuffer(data[8 + n + a : 8 + n + b], dtype="<f4").reshape(info["shape"])
    return out


def vocos_bin():
    tensors = read_safetensors(FIXTURES / "vocos-tiny" / "model.safetensors")
    state = collections.OrderedDict()
    storages = []
    for i, (key, value) in enumerate(tensors.items()):
        s = Storage(str(i), value)
        storages.append(s)
        # The window is a buffer, everything else a parameter, as in the released file.
        state[key] = contiguous(s, value.shape, parameter=key != "head.istft.window")
    state._metadata = collections.OrderedDict([("", {"version": 1}), ("backbone", {"version": 1})])
    save(state, FIXTURES / "vocos-tiny" / "pytorch_model.bin", storages)


def mixed_bin():
    rng = np.random.default_rng(7)
    base = rng.standard_normal((3, 4)).astype(np.float32)
    shared = Storage("0", np.arange(10, dtype=np.float32))
    half = Storage("1", rng.standard_normal(6).astype(np.float16))
    base_s = Storage("2", base)
    double = Storage("3", np.array([1.5, -2.25], dtype=np.float64))
    longs = Storage("4", np.array([3, -7, 2**40], dtype=np.int64))
    state = collections.OrderedDict()
    state["shared.a"] = Tensor(shared, 2, [3], [1])
    state["shared.b"] = Tensor(shared, 5, [2, 2], [2, 1])
    state["half"] = contiguous(half, [2, 3], parameter=True)
    state["transposed"] = Tensor(base_s, 0, [4, 3], [1, 4])
    state["double"] = contiguous(double, [2])
    state["longs"] = contiguous(longs, [3])
    wrapper = {"state_dict": state, "epoch": 3, "hparams": {"lr": 0.1, "name": "mixed"}}
    save(wrapper, FIXTURES / "torch" / "mixed.bin", [shared, half, base_s, double, longs], zipfile.ZIP_DEFLATED, "mixed")
    expected = {
        "shared.a": [2.0, 3.0, 4.0],
        "shared.b": [5.0, 6.0, 7.0, 8.0],
        "half": [float(v) for v in half.array],
        "transposed": [float(v) for v in base.T.reshape(-1)],
        "double": [1.5, -2.25],
        "longs": [3.0, -7.0, float(2**40)],
    }
    (FIXTURES / "torch" / "mixed.json").write_text(json.dumps(expected, indent=1) + "\n")


if __name__ == "__main__":
    vocos_bin()
    mixed_bin()
