"""Minimal ctypes view of libgatednet's C ABI (include/gatednet.h) for the benchmarks.

Deliberately numpy-free so the smoke mode runs on a bare Python. Only what the harness
calls is declared; optional functions (kernel suite, conv) are looked up with hasattr so
a library that lacks them is reported, not crashed on.
"""
import ctypes
import os
from ctypes import (POINTER, Structure, byref, c_char_p, c_double, c_float, c_int, c_int32,
                    c_int64, c_size_t, c_uint64, c_void_p)

REGIME = {"custom": 0, "relu": 1, "decoupled": 2, "fixed_learnt": 3, "fixed_random_ii": 4,
          "fixed_random_di": 5, "dlgn": 6, "dlgn_pwc": 7}
KERNEL = {"input_gram": 0, "base": 1, "overlap": 2, "npk": 3, "npk_normalized": 4}
PART_FEATURE, PART_VALUE = 0, 1


# Structs the library fills through its *_init functions end in spare bytes: a library whose
# struct grew fields at the end (the header's versioning rule) then writes into the spare, not
# past the object, and reads its own defaults back from there.
class NetworkSpec(Structure):
    _fields_ = [("struct_size", c_size_t), ("regime", c_int), ("input_size", c_int64),
                ("n_hidden", c_int64), ("hidden_widths", POINTER(c_int64)),
                ("output_size", c_int64), ("feature_activation", c_int), ("gate_kind", c_int),
                ("beta", c_float), ("value_input", c_int), ("permutation", POINTER(c_int64)),
                ("bias", c_int), ("feature_head", c_int), ("feature_frozen", c_int),
                ("init", c_int), ("init_scale", c_float), ("seed", c_uint64),
                ("gate_source", c_void_p), ("_spare", ctypes.c_char * 256)]


class EpochMetrics(Structure):
    _fields_ = [("epoch", c_int64), ("epoch_in_call", c_int64), ("epochs_in_call", c_int64),
                ("train_loss", c_double), ("train_accuracy", c_double),
                ("test_loss", c_double), ("test_accuracy", c_double), ("seconds", c_double)]


PROGRESS_FN = ctypes.CFUNCTYPE(c_int, POINTER(EpochMetrics), c_void_p)


class TrainOptions(Structure):
    _fields_ = [("struct_size", c_size_t), ("optimizer", c_int), ("loss", c_int),
                ("learning_rate", c_float), ("momentum", c_float), ("weight_decay", c_float),
                ("adam_beta1", c_float), ("adam_beta2", c_float), ("adam_epsilon", c_float),
                ("batch_size", c_int64), ("epochs", c_int64), ("shuffle_seed", c_uint64),
                ("train_feature_head", c_int), ("progress", PROGRESS_FN),
                ("progress_user", c_void_p), ("_spare", ctypes.c_char * 256)]


class GatedNetError(RuntimeError):
    pass


def find_library():
    """Path of libgatednet.so: $GATEDNET_LIB, else the repository's .build/release one."""
    env = os.environ.get("GATEDNET_LIB")
    if env:
        return env
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = os.path.join(root, ".build", "release", "libgatednet.so")
    if not os.path.exists(p):
        raise FileNotFoundError(f"{p} not found: build it (swift build -c release) or set "
                                "GATEDNET_LIB")
    return p


class Lib:
    def __init__(self, path=None):
        self.path = path or find_library()
        self.c = ctypes.CDLL(self.path)
        c = self.c
        c.gn_version.restype = c_char_p
        c.gn_last_error.restype = c_char_p
        c.gn_status_name.restype = c_char_p
        c.gn_status_name.argtypes = [c_int]
        c.gn_network_free.argtypes = [c_void_p]
        c.gn_network_free.restype = None

    def has(self, name):
        return hasattr(self.c, name)

    def check(self, status, what):
        if status != 0:
            name = self.c.gn_status_name(status).decode()
            msg = self.c.gn_last_error().decode()
            raise GatedNetError(f"{what}: {name}: {msg}")

    def version(self):
        return self.c.gn_version().decode()

    # -- data ------------------------------------------------------------------------
    def idx_dims(self, path):
        dims = (c_int64 * 8)()
        nd = c_int64()
        self.check(self.c.gn_idx_dims(path.encode(), dims, c_int64(8), byref(nd)), "gn_idx_dims")
        return [dims[i] for i in range(nd.value)]

    def idx_read_f32(self, path, scale):
        dims = self.idx_dims(path)
        count = 1
        for d in dims:
            count *= d
        buf = (c_float * count)()
        self.check(self.c.gn_idx_read_f32(path.encode(), c_float(scale), buf, c_int64(count)),
                   "gn_idx_read_f32")
        return buf, dims

    def idx_read_i32(self, path):
        dims = self.idx_dims(path)
        buf = (c_int32 * dims[0])()
        self.check(self.c.gn_idx_read_i32(path.encode(), buf, c_int64(dims[0])), "gn_idx_read_i32")
        return buf, dims

    # -- networks --------------------------------------------------------------------
    def network(self, regime, input_size, widths, output_size, seed=0, **fields):
        w = (c_int64 * len(widths))(*widths)
        spec = NetworkSpec()
        self.check(self.c.gn_network_spec_init(byref(spec), c_int(REGIME[regime]),
                                               c_int64(input_size), c_int64(len(widths)), w,
                                               c_int64(output_size)), "gn_network_spec_init")
        spec.seed = seed
        for k, v in fields.items():
            setattr(spec, k, v)
        h = c_void_p()
        self.check(self.c.gn_network_create(byref(spec), byref(h)), "gn_network_create")
        return Network(self, h)


class _Handle:
    """Owns one library handle; `_free_name` is the C function that releases it."""
    _free_name = None
    h = None

    def free(self):
        if self.h:
            getattr(self.lib.c, self._free_name)(self.h)
            self.h = None

    def __del__(self):
        try:
            self.free()
        except Exception:
            pass


class Network(_Handle):
    _free_name = "gn_network_free"

    def __init__(self, lib, handle):
        self.lib, self.h = lib, handle

    def describe(self):
        buf = ctypes.create_string_buffer(512)
        need = c_size_t()
        self.lib.check(self.lib.c.gn_network_describe(self.h, buf, c_size_t(512), byref(need)),
                       "gn_network_describe")
        return buf.value.decode()

    def weight_shape(self, part, layer):
        r, c = c_int64(), c_int64()
        self.lib.check(self.lib.c.gn_network_weight_shape(self.h, c_int(part), c_int64(layer),
                                                          byref(r), byref(c)), "weight_shape")
        return r.value, c.value

    def weights(self, part, layer):
        r, c = self.weight_shape(part, layer)
        out = (c_float * (r * c))()
        self.lib.check(self.lib.c.gn_network_get_weights(self.h, c_int(part), c_int64(layer), out,
                                                         c_int64(r * c)), "get_weights")
        return out, (r, c)

    def train(self, x, y, n, batch, epochs=1, lr=3e-4, seed=1, feature_head=False):
        o = TrainOptions()
        self.lib.check(self.lib.c.gn_train_options_init(byref(o)), "gn_train_options_init")
        o.batch_size, o.epochs, o.learning_rate, o.shuffle_seed = batch, epochs, lr, seed
        o.train_feature_head = 1 if feature_head else 0
        hist = (EpochMetrics * epochs)()
        ran = c_int64()
        self.lib.check(self.lib.c.gn_train(self.h, x, y, c_int64(n), None, None, c_int64(0),
                                           byref(o), hist, c_int64(epochs), byref(ran)),
                       "gn_train")
        return [hist[i] for i in range(ran.value)]

    def predict(self, x, n, out, capacity):
        self.lib.check(self.lib.c.gn_predict(self.h, x, c_int64(n), out, c_int64(capacity)),
                       "gn_predict")

    def kernel(self, kind, xa, na, xb, nb, out, ld, capacity, layer=0):
        self.lib.check(self.lib.c.gn_kernel(self.h, c_int(KERNEL[kind]), c_int64(layer), xa,
                                            c_int64(na), xb, c_int64(nb), out, c_int64(ld),
                                            c_int64(capacity)), "gn_kernel")


def offset(buf, elements, ctype=c_float):
    """Pointer to buf[elements:] (no copy)."""
    return ctypes.cast(ctypes.addressof(buf) + elements * ctypes.sizeof(ctype), POINTER(ctype))


def openblas_info(lib):
    """(corename, config, threads) of the OpenBLAS libgatednet loaded, or None."""
    try:
        ob = ctypes.CDLL("libopenblas.so.0")
        ob.openblas_get_corename.restype = c_char_p
        ob.openblas_get_config.restype = c_char_p
        return (ob.openblas_get_corename().decode(), ob.openblas_get_config().decode(),
                ob.openblas_get_num_threads())
    except (OSError, AttributeError):
        return None


# -- kernel suite and conv networks (optional sections of the header) -------------------

KERNEL.update({"npk_trace_normalized": 5, "ntk_value": 6, "ntk_feature": 7, "ntk_cross": 8,
               "ntk": 9, "npk_limit": 10, "ntk_limit": 11})
GATE_PATH = {"auto": 0, "float": 1, "packed": 2}
KERNEL_PROGRESS_FN = ctypes.CFUNCTYPE(c_int, c_double, c_void_p)


class KernelOptions(Structure):
    _fields_ = [("struct_size", c_size_t), ("layer", c_int64), ("output", c_int64),
                ("row_begin", c_int64), ("row_count", c_int64), ("col_begin", c_int64),
                ("col_count", c_int64), ("upper_only", c_int), ("gate_path", c_int),
                ("ntk_scaling", c_int), ("progress", KERNEL_PROGRESS_FN),
                ("progress_user", c_void_p), ("_spare", ctypes.c_char * 256)]


class LayerSpec(Structure):
    _fields_ = [("kind", c_int), ("units", c_int64), ("kernel", c_int64), ("stride", c_int64),
                ("padding", c_int), ("bias", c_int), ("block", c_int64)]


class ConvNetworkSpec(Structure):
    _fields_ = [("struct_size", c_size_t), ("regime", c_int), ("in_channels", c_int64),
                ("in_height", c_int64), ("in_width", c_int64), ("n_layers", c_int64),
                ("layers", POINTER(LayerSpec)), ("layer_struct_size", c_size_t),
                ("feature_activation", c_int), ("gate_kind", c_int), ("beta", c_float),
                ("value_input", c_int), ("wiring", c_int), ("permutation", POINTER(c_int64)),
                ("wiring_seed", c_uint64), ("feature_frozen", c_int), ("init", c_int),
                ("init_scale", c_float), ("seed", c_uint64), ("gate_source", c_void_p),
                ("_spare", ctypes.c_char * 256)]


ARCH = {"gconv": 0, "vconv": 1, "dlgn_conv": 2, "resnet_small": 3, "vgg19": 4, "davidnet": 5}


def kernel_compute(net, kind, xa, na, xb, nb, out, ld, capacity, **opts):
    """gn_kernel_compute with options given as keyword fields (gate_path by name)."""
    L = net.lib
    o = KernelOptions()
    L.check(L.c.gn_kernel_options_init(byref(o)), "gn_kernel_options_init")
    for k, v in opts.items():
        setattr(o, k, GATE_PATH[v] if k == "gate_path" else v)
    L.check(L.c.gn_kernel_compute(net.h, c_int(KERNEL[kind]), xa, c_int64(na), xb, c_int64(nb),
                                  byref(o), out, c_int64(ld), c_int64(capacity)),
            "gn_kernel_compute")


class ConvNetwork(_Handle):
    _free_name = "gn_conv_network_free"

    def __init__(self, lib, arch, regime, classes=10, width_scale=1.0, in_shape=(1, 28, 28),
                 seed=0):
        self.lib, self.h = lib, None
        c = lib.c
        n = c_int64()
        lib.check(c.gn_conv_architecture_layers(c_int(ARCH[arch]), c_int64(classes),
                                                c_float(width_scale), None, c_int64(0), byref(n)),
                  "gn_conv_architecture_layers")
        self.layers = (LayerSpec * n.value)()
        lib.check(c.gn_conv_architecture_layers(c_int(ARCH[arch]), c_int64(classes),
                                                c_float(width_scale), self.layers, n, byref(n)),
                  "gn_conv_architecture_layers")
        spec = ConvNetworkSpec()
        ch, hh, ww = in_shape
        lib.check(c.gn_conv_network_spec_init(byref(spec), c_int(REGIME[regime]), c_int64(ch),
                                              c_int64(hh), c_int64(ww), n, self.layers),
                  "gn_conv_network_spec_init")
        spec.seed = seed
        h = c_void_p()
        lib.check(c.gn_conv_network_create(byref(spec), byref(h)), "gn_conv_network_create")
        self.h = h
        c.gn_conv_network_free.argtypes = [c_void_p]
        c.gn_conv_network_free.restype = None

    def layer_list(self):
        return [dict(kind=l.kind, units=l.units, kernel=l.kernel, stride=l.stride,
                     padding=l.padding, bias=l.bias, block=l.block) for l in self.layers]

    def describe(self):
        buf = ctypes.create_string_buffer(512)
        need = c_size_t()
        self.lib.check(self.lib.c.gn_conv_network_describe(self.h, buf, c_size_t(512), byref(need)),
                       "gn_conv_network_describe")
        return buf.value.decode()

    def train(self, x, y, n, batch, epochs=1, lr=3e-4, seed=1):
        o = TrainOptions()
        self.lib.check(self.lib.c.gn_train_options_init(byref(o)), "gn_train_options_init")
        o.batch_size, o.epochs, o.learning_rate, o.shuffle_seed = batch, epochs, lr, seed
        hist = (EpochMetrics * epochs)()
        ran = c_int64()
        self.lib.check(self.lib.c.gn_conv_network_train(self.h, x, y, c_int64(n), None, None,
                                                        c_int64(0), byref(o), hist,
                                                        c_int64(epochs), byref(ran)),
                       "gn_conv_network_train")

