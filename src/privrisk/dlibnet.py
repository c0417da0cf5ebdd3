"""dlib's face-recognition ResNet, read from its own weights file and run by ONNX Runtime.

dlib computes face_recognition's 128-number descriptor with a small ResNet whose weights ship as
``dlib_face_recognition_resnet_model_v1.dat``, written by dlib's serializers. This module reads
that file (:func:`read_dlib_net`), checks it against the network the weights were trained for
(the ``anet_type`` of dlib's ``dnn_face_recognition_ex.cpp``), builds the same network as an ONNX
graph in memory (:func:`build_onnx`) and runs it (:class:`FastDescriptor`). Chip extraction stays
with dlib; only the forward pass moves. The descriptors equal dlib's within float32 rounding
(docs/engine.md has the measurement); the hash of the file the proof was made on is
:data:`VERIFIED_SHA256`, and :func:`load_fast_descriptor` declines any other file.

The file format, as dlib's serializers write it:

- integers: one control byte (low 4 bits: how many value bytes follow; 0x80: negative), then the
  magnitude, little-endian;
- floating-point scalars: two integers, a mantissa and a base-2 exponent;
- strings: an integer length, then the bytes; booleans: one byte, ``'0'`` or ``'1'``;
- tensors: an integer version (2), the four dimensions (samples, k, rows, columns), then the values
  as little-endian IEEE float32;
- a network is written from the top: the loss layer, then each layer's sub-network before the
  layer's own details, so the input layer comes first and the layers follow bottom-up. Tag and
  skip layers are written as a version number around their sub-network, with no name.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelUnavailable

# sha256 of face_recognition_models' dlib_face_recognition_resnet_model_v1.dat, the file whose
# fast-engine descriptors were compared with dlib's on every sample photo and demo capture.
VERIFIED_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"

CHIP_SIZE = 150  # dlib's compute_face_descriptor: 150 x 150 chips ...
CHIP_PADDING = 0.25  # ... with 0.25 padding around the landmarks' face box


class DlibFormatError(ValueError):
    """The bytes are not the dlib network this module knows how to read."""


@dataclass
class Layer:
    """One layer of a dlib network as the file describes it (bottom-up order)."""

    kind: str  # 'input', 'con', 'affine', 'relu', 'add_prev', 'avg_pool', 'max_pool', 'fc', 'tag'
    params: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class DlibNet:
    """A parsed dlib network: its layers bottom-up (input first) and the loss layer's settings."""

    layers: list[Layer]
    loss: dict[str, Any]
    sha256: str


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise DlibFormatError(f"file ends early (wanted {n} bytes at offset {self.pos})")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def read_int(self) -> int:
        control = self._take(1)[0]
        size = control & 0x0F
        if size == 0 or size > 8:
            raise DlibFormatError(f"bad integer control byte {control:#x} at offset {self.pos - 1}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def read_float(self) -> float:
        mantissa = self.read_int()
        exponent = self.read_int()
        if exponent >= 32000:  # dlib's markers for infinities and NaN
            raise DlibFormatError(f"non-finite scalar at offset {self.pos}")
        return float(np.ldexp(float(mantissa), exponent))

    def read_string(self) -> str:
        n = self.read_int()
        return self._take(n).decode("ascii", errors="replace")

    def read_bool(self) -> bool:
        byte = self._take(1)
        if byte not in (b"0", b"1"):
            raise DlibFormatError(f"bad boolean {byte!r} at offset {self.pos - 1}")
        return byte == b"1"

    def read_tensor(self) -> np.ndarray:
        version = self.read_int()
        if version != 2:
            raise DlibFormatError(f"tensor version {version} at offset {self.pos}, expected 2")
        shape = tuple(self.read_int() for _ in range(4))
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4")
        return values.reshape(shape).astype(np.float32)

    def read_alias(self) -> tuple[int, int, int, int]:
        version = self.read_int()
        if version != 1:
            raise DlibFormatError(f"alias_tensor version {version} at offset {self.pos}, expected 1")
        n, k, nr, nc = (self.read_int() for _ in range(4))
        return (n, k, nr, nc)


def _read_details(r: _Reader) -> Layer:
    name = r.read_string()
    if name == "con_4":
        params = r.read_tensor().ravel()
        num_filters, nr, nc, stride_y, stride_x, pad_y, pad_x = (r.read_int() for _ in range(7))
        filters, biases = r.read_alias(), r.read_alias()
        for _ in range(4):  # learning-rate and weight-decay multipliers
            r.read_float()
        n_w = int(np.prod(filters))
        if (
            filters[0] != num_filters
            or filters[2:] != (nr, nc)
            or biases[1] != num_filters
            or params.size != n_w + num_filters
        ):
            raise DlibFormatError(f"con_ layer with inconsistent shapes {filters} / {params.size} values")
        return Layer(
            "con",
            {"filters": num_filters, "kernel": (nr, nc), "stride": (stride_y, stride_x), "pad": (pad_y, pad_x)},
            {"weight": params[:n_w].reshape(filters), "bias": params[n_w:].copy()},
        )
    if name == "affine_":
        params = r.read_tensor().ravel()
        gamma, beta = r.read_alias(), r.read_alias()
        mode = r.read_int()
        n = int(np.prod(gamma))
        if mode != 0 or gamma != beta or params.size != 2 * n:  # 0: CONV_MODE, one gamma per channel
            raise DlibFormatError(f"affine_ layer in mode {mode} with shapes {gamma}/{beta}")
        return Layer("affine", {"channels": n}, {"gamma": params[:n].copy(), "beta": params[n:].copy()})
    if name in ("relu_", "add_prev_"):
        return Layer(name.rstrip("_"))
    if name in ("avg_pool_2", "max_pool_2"):
        nr, nc, stride_y, stride_x, pad_y, pad_x = (r.read_int() for _ in range(6))
        return Layer(name[:-2], {"window": (nr, nc), "stride": (stride_y, stride_x), "pad": (pad_y, pad_x)})
    if name == "fc_2":
        num_outputs, num_inputs = r.read_int(), r.read_int()
        params = r.read_tensor().ravel()
        weights, _biases = r.read_alias(), r.read_alias()
        bias_mode = r.read_int()
        for _ in range(4):
            r.read_float()
        n_w = num_inputs * num_outputs
        has_bias = bias_mode == 0  # FC_HAS_BIAS
        if weights[:2] != (num_inputs, num_outputs) or params.size != n_w + (num_outputs if has_bias else 0):
            raise DlibFormatError(f"fc_ layer with inconsistent shapes {weights} / {params.size} values")
        arrays = {"weight": params[:n_w].reshape(num_inputs, num_outputs)}
        if has_bias:
            arrays["bias"] = params[n_w:].copy()
        return Layer("fc", {"outputs": num_outputs, "inputs": num_inputs, "bias": has_bias}, arrays)
    raise DlibFormatError(f"unknown layer {name!r} at offset {r.pos}")


# The reader's parts that other dlib networks' readers build on (privrisk.mmodnet, the CNN face detector).
Reader = _Reader
read_details = _read_details


def _read_subnet(r: _Reader) -> list[Layer]:
    """The layers of one sub-network, bottom-up."""
    version = r.read_int()
    if version == 1:  # add_tag_layer / add_skip_layer: only their sub-network is stored
        return [*_read_subnet(r), Layer("tag")]
    if version == 2:  # add_layer over another layer
        below = _read_subnet(r)
        layer = _read_details(r)
        r.read_bool(), r.read_bool(), r.read_bool()  # setup called, gradient stale, getters disabled
        r.read_tensor(), r.read_tensor(), r.read_tensor()  # x_grad, cached_output, params_grad (empty)
        return [*below, layer]
    if version == 3:  # add_layer over the input layer
        name = r.read_string()
        if name != "input_rgb_image_sized":
            raise DlibFormatError(f"unknown input layer {name!r}")
        means = (r.read_float(), r.read_float(), r.read_float())
        rows, cols = r.read_int(), r.read_int()
        layer = _read_details(r)
        r.read_bool(), r.read_bool(), r.read_bool()
        r.read_tensor(), r.read_tensor(), r.read_tensor()  # x_grad, cached_output, grad_final
        r.read_int()  # sample expansion factor
        return [Layer("input", {"means": means, "size": (rows, cols)}), layer]
    raise DlibFormatError(f"unexpected layer version {version} at offset {r.pos}")


def read_dlib_net(path: str | Path) -> DlibNet:
    """Parse a dlib metric-loss network file into its layers (bottom-up), checking that every byte
    is consumed. Raises :class:`DlibFormatError` naming the offset when the bytes do not fit."""
    data = Path(path).read_bytes()
    r = _Reader(data)
    version = r.read_int()
    name = r.read_string()
    if version != 1 or name != "loss_metric_2":
        raise DlibFormatError(f"{path}: not a dlib metric network (starts with {name!r})")
    loss = {"margin": r.read_float(), "distance_threshold": r.read_float()}
    layers = _read_subnet(r)
    if r.pos != len(data):
        raise DlibFormatError(f"{path}: {len(data) - r.pos} bytes left after the network")
    return DlibNet(layers, loss, hashlib.sha256(data).hexdigest())


# ---------------------------------------------------------------------------------------------
# The network the weights belong to: dlib's dnn_face_recognition_ex.cpp ``anet_type``.


def _expected_kinds() -> list[str]:
    """The layer kinds of ``anet_type``, bottom-up, as the file lists them: a 7x7/2 convolution,
    max pooling, then residual blocks (3 x 32, 4 x 64, 3 x 128, 3 x 256, 1 x 256 channels; the
    first block of each level after the first halves the resolution), global average, fc 128."""
    block = ["tag", "con", "affine", "relu", "con", "affine", "add_prev", "relu"]
    down = ["tag", "con", "affine", "relu", "con", "affine", "tag", "tag", "avg_pool", "add_prev", "relu"]
    kinds = ["input", "con", "affine", "relu", "max_pool"]
    kinds += block * 3  # alevel4: 3 x 32
    kinds += down + block * 3  # alevel3: 64
    kinds += down + block * 2  # alevel2: 128
    kinds += down + block * 2  # alevel1: 256
    kinds += down  # alevel0: 256
    return [*kinds, "avg_pool", "fc"]


def check_face_net(net: DlibNet) -> None:
    """Raise :class:`DlibFormatError` unless ``net`` is dlib's face ResNet (layer kinds in order,
    150 px input, 128 outputs)."""
    kinds = [layer.kind for layer in net.layers]
    expected = _expected_kinds()
    if kinds != expected:
        first = next((i for i, (a, b) in enumerate(zip(kinds, expected, strict=False)) if a != b), None)
        raise DlibFormatError(
            f"not dlib's face ResNet: {len(kinds)} layers (expected {len(expected)}), first difference at layer {first}"
        )
    if net.layers[0].params["size"] != (CHIP_SIZE, CHIP_SIZE) or net.layers[-1].params["outputs"] != 128:
        raise DlibFormatError("not dlib's face ResNet: unexpected input size or descriptor length")


def build_onnx(net: DlibNet, opset: int = 17) -> bytes:
    """The network as a serialized ONNX model: input ``chips``, (n, 150, 150, 3) uint8 RGB face chips
    as dlib extracts them; output ``descriptors``, (n, 128) float32.

    Each dlib layer becomes the ONNX operator(s) that compute the same thing: ``con_`` a Conv with
    dlib's padding, ``affine_`` a per-channel multiply and add, ``add_prev_`` an Add of the two
    tensors zero-padded at the end to the larger size (dlib adds tensors of different sizes that
    way), ``avg_pool_`` with a zero window a global average, ``fc_`` a MatMul."""
    import onnx  # noqa: PLC0415 - optional until the fast engine is used
    from onnx import TensorProto, helper

    check_face_net(net)
    g = _Graph()
    g.input_layer(np.array(net.layers[0].params["means"], dtype=np.float32))
    layers = net.layers[1:]
    i = 0
    while i < len(layers):
        i += g.add(layers[i], layers[i + 1].kind if i + 1 < len(layers) else None)
    g.nodes[-1].output[0] = "descriptors"
    graph = helper.make_graph(
        g.nodes,
        "dlib_face_recognition_resnet_model_v1",
        [helper.make_tensor_value_info("chips", TensorProto.UINT8, ["n", CHIP_SIZE, CHIP_SIZE, 3])],
        [helper.make_tensor_value_info("descriptors", TensorProto.FLOAT, ["n", 128])],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="privrisk")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


Shape = tuple[int, int, int]  # channels, rows, columns of a tensor of one sample


def _out_size(n: int, window: int, stride: int, pad: int) -> int:
    return 1 + (n + 2 * pad - window) // stride


class _Graph:
    """An ONNX graph being built layer by layer: its nodes and initializers, the running tensor
    ``x`` with its :data:`Shape`, and the residual block's tagged tensors (``tag1`` the block's
    input, ``tag2`` its output while the shortcut is built)."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.inits: list = []
        self.count = 0
        self.x, self.shape = "chips", (3, CHIP_SIZE, CHIP_SIZE)
        self.tag1: tuple[str, Shape] | None = None
        self.tag2: tuple[str, Shape] | None = None

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def const(self, array: np.ndarray, prefix: str) -> str:
        from onnx import numpy_helper  # noqa: PLC0415

        n = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(array), n))
        return n

    def op(self, kind: str, inputs: list[str], **attrs) -> str:
        from onnx import helper  # noqa: PLC0415

        out = self.name(kind.lower() + "_")
        self.nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def input_layer(self, means: np.ndarray) -> None:
        """uint8 (n, rows, columns, 3) to float (n, 3, rows, columns), less dlib's channel means, / 256."""
        from onnx import TensorProto  # noqa: PLC0415

        x = self.op("Cast", [self.x], to=TensorProto.FLOAT)
        x = self.op("Transpose", [x], perm=[0, 3, 1, 2])
        x = self.op("Sub", [x, self.const(means.reshape(1, 3, 1, 1), "means")])
        self.x = self.op("Mul", [x, self.const(np.array(1 / 256, dtype=np.float32), "scale")])  # exact

    def add(self, layer: Layer, next_kind: str | None) -> int:
        """Append ``layer``; returns how many layers it consumed (a tag pair counts two)."""
        p, kind = layer.params, layer.kind
        if kind == "con":
            self._conv(layer)
        elif kind == "affine":
            c = p["channels"]
            x = self.op("Mul", [self.x, self.const(layer.arrays["gamma"].reshape(1, c, 1, 1), "g")])
            self.x = self.op("Add", [x, self.const(layer.arrays["beta"].reshape(1, c, 1, 1), "beta")])
        elif kind == "relu":
            self.x = self.op("Relu", [self.x])
        elif kind in ("max_pool", "avg_pool"):
            self._pool(layer)
        elif kind == "tag" and next_kind == "tag":  # tag2 then skip1: keep the block output, go back to tag1's
            self.tag2 = (self.x, self.shape)
            assert self.tag1 is not None
            self.x, self.shape = self.tag1
            return 2
        elif kind == "tag":  # tag1: the block's input
            self.tag1 = (self.x, self.shape)
        elif kind == "add_prev":
            self._add_prev()
        elif kind == "fc":
            x = self.op("Flatten", [self.x], axis=1)
            self.x = self.op("MatMul", [x, self.const(layer.arrays["weight"], "fc")])
            if "bias" in layer.arrays:
                self.x = self.op("Add", [self.x, self.const(layer.arrays["bias"], "fcb")])
        else:
            raise DlibFormatError(f"cannot translate layer {kind!r}")
        return 1

    def _conv(self, layer: Layer) -> None:
        p = layer.params
        (kr, kc), (sr, sc), (pr, pc) = p["kernel"], p["stride"], p["pad"]
        weights = [self.const(layer.arrays["weight"], "w"), self.const(layer.arrays["bias"], "b")]
        self.x = self.op("Conv", [self.x, *weights], kernel_shape=[kr, kc], strides=[sr, sc], pads=[pr, pc, pr, pc])
        self.shape = (p["filters"], _out_size(self.shape[1], kr, sr, pr), _out_size(self.shape[2], kc, sc, pc))

    def _pool(self, layer: Layer) -> None:
        p = layer.params
        (wr, wc), (sr, sc), (pr, pc) = p["window"], p["stride"], p["pad"]
        if (wr, wc) == (0, 0):
            self.x = self.op("GlobalAveragePool" if layer.kind == "avg_pool" else "GlobalMaxPool", [self.x])
            self.shape = (self.shape[0], 1, 1)
            return
        if (pr, pc) != (0, 0):
            raise DlibFormatError("padded pooling is not supported")  # dlib averages in-bounds only
        kind = "MaxPool" if layer.kind == "max_pool" else "AveragePool"
        self.x = self.op(kind, [self.x], kernel_shape=[wr, wc], strides=[sr, sc])
        self.shape = (self.shape[0], _out_size(self.shape[1], wr, sr, 0), _out_size(self.shape[2], wc, sc, 0))

    def _add_prev(self) -> None:
        tagged = self.tag2 if self.tag2 is not None else self.tag1
        if tagged is None:
            raise DlibFormatError("add_prev without a tagged tensor")
        other, other_shape = tagged
        self.tag1 = self.tag2 = None
        full = (
            max(self.shape[0], other_shape[0]),
            max(self.shape[1], other_shape[1]),
            max(self.shape[2], other_shape[2]),
        )
        x = self._pad_to(self.x, self.shape, full)
        self.x = self.op("Add", [x, self._pad_to(other, other_shape, full)])
        self.shape = full

    def _pad_to(self, x: str, shape: Shape, full: Shape) -> str:
        """``x`` zero-padded after its last channel, row and column up to ``full`` (dlib's add of
        tensors of different sizes)."""
        if shape == full:
            return x
        extra = [f - s for f, s in zip(full, shape, strict=True)]
        pads = np.array([0, 0, 0, 0, 0, *extra], dtype=np.int64)
        return self.op("Pad", [x, self.const(pads, "pads")], mode="constant")


# ---------------------------------------------------------------------------------------------
# Running it.


class FastDescriptor:
    """dlib's face descriptor network on ONNX Runtime: ``descriptor(chips)`` maps (n, 150, 150, 3)
    uint8 RGB chips to (n, 128) float32 descriptors.

    The ONNX graph is built once; each process makes its own ONNX Runtime session on first use,
    because privrisk forks its embedding workers and a session does not survive ``fork``. Sessions
    run on one thread: worker processes share the cores between them, and a process without ONNX
    Runtime threads forks safely. A session inherited from the parent is never destroyed in the
    child (its destructor would wait for the parent's threads)."""

    def __init__(self, onnx_model: bytes, sha256: str) -> None:
        self.onnx_model = onnx_model
        self.sha256 = sha256
        self._lock = threading.Lock()
        self._session: Any = None
        self._pid = -1

    def _get_session(self):
        import ctypes

        ort = import_onnxruntime()
        pid = os.getpid()
        if self._session is None or self._pid != pid:
            with self._lock:
                if self._session is None or self._pid != pid:
                    if self._session is not None:  # the parent's: keep it alive, unused, in this process
                        ctypes.pythonapi.Py_IncRef(ctypes.py_object(self._session))
                    options = ort.SessionOptions()
                    options.intra_op_num_threads = 1
                    options.inter_op_num_threads = 1
                    self._session = ort.InferenceSession(self.onnx_model, options, providers=["CPUExecutionProvider"])
                    self._pid = pid
        return self._session

    def __call__(self, chips: np.ndarray, batch_size: int = 16) -> np.ndarray:
        chips = np.ascontiguousarray(chips, dtype=np.uint8)
        if chips.ndim != 4 or chips.shape[1:] != (CHIP_SIZE, CHIP_SIZE, 3):
            raise ValueError(f"face chips must be (n, {CHIP_SIZE}, {CHIP_SIZE}, 3) uint8, not {chips.shape}")
        if len(chips) == 0:
            return np.zeros((0, 128), np.float32)
        session = self._get_session()
        parts = [session.run(None, {"chips": chips[i : i + batch_size]})[0] for i in range(0, len(chips), batch_size)]
        return np.concatenate(parts).astype(np.float32, copy=False)


def import_onnxruntime() -> Any:
    """ONNX Runtime, imported with its telemetry off (raises ImportError when it is not installed).

    Importing ``onnxruntime`` (1.32, the locked version, on Linux) writes a persistent device
    identifier and an SQLite queue of telemetry events (OS, processor, program path, a session id)
    for Microsoft's 1DS telemetry under ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``. A
    privacy tool must leave no identifier behind and send nothing, so ``ORT_DISABLE_TELEMETRY=1`` is
    set before the import unless the user set the variable themselves. Every import of ONNX Runtime
    in privrisk goes through here; worker processes inherit the variable."""
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime  # noqa: PLC0415

    return onnxruntime


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_verified_file(path: str | Path, expected_sha256: str | None, user: str, what: str) -> None:
    """Raise :class:`~privrisk.errors.ModelUnavailable` with a one-line reason when ONNX Runtime is
    missing or the file at ``path`` (``what``: 'the face network') cannot be read or is not the one
    ``user`` ('the fast engine') was verified on (``expected_sha256``; None skips that check)."""
    try:
        import onnx  # noqa: F401, PLC0415

        import_onnxruntime()
    except ImportError as exc:
        raise ModelUnavailable(f"{user} needs onnx and onnxruntime ({exc})") from None
    try:
        sha = file_sha256(path)
    except OSError as exc:
        raise ModelUnavailable(f"cannot read {what} {path} ({exc.strerror or exc})") from None
    if expected_sha256 is not None and sha != expected_sha256:
        raise ModelUnavailable(
            f"{path} has sha256 {sha[:16]}..., not the file {user} was verified on ({expected_sha256[:16]}...)"
        )


def load_fast_descriptor(path: str | Path, expected_sha256: str | None = VERIFIED_SHA256) -> FastDescriptor:
    """The fast descriptor for the weights file at ``path``.

    Raises :class:`~privrisk.errors.ModelUnavailable` with a one-line reason when ONNX Runtime is
    missing, when the file's sha256 is not ``expected_sha256`` (the file whose descriptors were
    proven equal to dlib's; None skips the check, for experiments), or when the file is not the
    network this module reads."""
    check_verified_file(path, expected_sha256, "the fast engine", "the face network")
    try:
        net = read_dlib_net(path)
        descriptor = FastDescriptor(build_onnx(net), net.sha256)
    except DlibFormatError as exc:
        raise ModelUnavailable(f"cannot read the face network {path}: {exc}") from None
    try:
        descriptor._get_session()
    except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors derive from Exception only
        raise ModelUnavailable(f"ONNX Runtime cannot run the face network ({type(exc).__name__}: {exc})") from None
    return descriptor
