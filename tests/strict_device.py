"""A stand-in for CuPy that runs on the CPU and fails loudly on the usual CuPy mistakes.

Arrays of this module are `DeviceArray`s (a NumPy subclass). Like CuPy arrays they:
- refuse to be mixed with host NumPy arrays in arithmetic (CuPy raises TypeError);
- refuse host arrays assigned into them (dev[...] = host: a ValueError on CuPy);
- refuse NumPy *functions* (np.concatenate(dev), np.exp(dev)...: on CuPy these either fail or
  silently copy to the host) — library code must call backend.xp.<function>;
- refuse hidden bulk transfers (tolist(), __array__); `.get()` / backend.to_host is the explicit
  way. (np.asarray(dev) returns a base-class view of a subclass without asking it, so the array
  cannot refuse it; `host_only_functions()` lists the replacements for np.asarray, np.array and
  np.testing's comparisons that refuse device arrays, as CuPy does, for a test run to install.)
Scalar conversions (float(dev), bool(dev)) are what CuPy does as a synchronising transfer:
they are allowed but counted, so a test can bound the host round-trips per training step.
"""
import functools
import types

import numpy as np


class DeviceDisciplineError(TypeError):
    pass


transfers = {"scalar": 0}


class DeviceArray(np.ndarray):
    def __array_ufunc__(self, ufunc, method, *inputs, out=None, **kwargs):
        args = [_unwrap(a, f"{ufunc.__name__}") for a in inputs]
        if out is not None:
            kwargs["out"] = tuple(_unwrap(o, f"{ufunc.__name__}(out=)") for o in out)
        result = getattr(ufunc, method)(*args, **kwargs)
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        raise DeviceDisciplineError(
            f"NumPy function np.{func.__name__} was applied to a device array: on CuPy this fails or "
            f"copies to the host. Use backend.xp.{func.__name__}.")

    def __array__(self, dtype=None, copy=None):
        raise DeviceDisciplineError("implicit device -> host conversion (np.asarray on a device array); "
                                    "use backend.to_host(array) where a host copy is really wanted")

    def __setitem__(self, index, value):
        if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim > 0
                                                and not isinstance(value, DeviceArray)):
            raise DeviceDisciplineError(
                "a host array was assigned into a device array (dev[...] = host): CuPy raises ValueError "
                "('non-scalar numpy.ndarray cannot be used for fill'); move it with backend.to_device first")
        super().__setitem__(index, value)

    def get(self):
        return np.array(self.view(np.ndarray))

    def __float__(self):
        transfers["scalar"] += 1
        return float(self.view(np.ndarray))

    def __bool__(self):
        transfers["scalar"] += 1
        return bool(self.view(np.ndarray))

    def item(self, *args):
        transfers["scalar"] += 1
        return self.view(np.ndarray).item(*args)

    def tolist(self):
        raise DeviceDisciplineError("tolist() on a device array is a hidden transfer; use backend.to_host")


def _unwrap(a, where):
    if isinstance(a, DeviceArray):
        return a.view(np.ndarray)
    if isinstance(a, np.ndarray):
        raise DeviceDisciplineError(f"{where}: a host NumPy array of shape {a.shape} was mixed with a "
                                    f"device array (CuPy raises TypeError here); move it with backend.to_device")
    return a                                   # Python and NumPy scalars are fine on CuPy too


def _wrap(result):
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, np.ndarray) and not isinstance(result, DeviceArray):
        return result.view(DeviceArray)
    if isinstance(result, np.generic):           # CuPy reductions return 0-d device arrays
        return np.asarray(result).view(DeviceArray)
    return result


def _deep_unwrap(value, where):
    if isinstance(value, (list, tuple)):
        return type(value)(_deep_unwrap(v, where) for v in value)
    return _unwrap(value, where)


def _device_function(fn, accepts_host=False):
    """xp.<fn>: device arrays in, device arrays out; host arrays refused (as CuPy does) unless
    the function is a transfer (asarray)."""
    def call(*args, **kwargs):
        unwrap = (lambda v, where: v.view(np.ndarray) if isinstance(v, DeviceArray) else v) \
            if accepts_host else _deep_unwrap
        args = [unwrap(a, f"xp.{fn.__name__}") for a in args]
        kwargs = {k: unwrap(v, f"xp.{fn.__name__}") for k, v in kwargs.items()}
        return _wrap(fn(*args, **kwargs))
    return call


class _StrictModule(types.ModuleType):
    """`import strict_device as xp`-like module: xp.zeros, xp.exp, ... return DeviceArrays."""

    def __getattr__(self, name):
        value = getattr(np, name)
        if isinstance(value, np.ufunc):
            return value                         # ufuncs dispatch through __array_ufunc__
        if callable(value) and not isinstance(value, type):
            return _device_function(value)
        return value


xp = _StrictModule("strict_device_xp")
xp.asarray = _device_function(lambda a, dtype=None: np.array(a, dtype=dtype), accepts_host=True)  # a transfer: copies
xp.ascontiguousarray = _device_function(np.ascontiguousarray)
xp.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=_device_function(np.lib.stride_tricks.as_strided)))


# NumPy functions that take a device array silently (they see an ndarray subclass) but raise
# TypeError on CuPy: the implicit device -> host copy. A strict test run replaces them for each test.
HOST_ONLY = {np: ("asarray", "asanyarray", "array", "ascontiguousarray", "asfortranarray"),
             np.testing: ("assert_allclose", "assert_array_equal", "assert_equal", "assert_almost_equal",
                          "assert_array_almost_equal", "assert_array_less")}


def _holds_device_array(value):
    if isinstance(value, DeviceArray):
        return True
    if isinstance(value, (list, tuple)):
        return any(_holds_device_array(v) for v in value)
    if isinstance(value, dict):
        return any(_holds_device_array(v) for v in value.values())
    return False


def _refusing_device_arrays(fn, where):
    @functools.wraps(fn)
    def call(*args, **kwargs):
        if _holds_device_array(args) or _holds_device_array(kwargs):
            raise DeviceDisciplineError(f"{where} was given a device array: an implicit device -> host "
                                        f"conversion, a TypeError on CuPy; use backend.to_host(array)")
        return fn(*args, **kwargs)
    return call


def host_only_functions():
    """(module, name, replacement) for every HOST_ONLY function: install with monkeypatch.setattr."""
    prefix = {np: "np", np.testing: "np.testing"}
    return [(module, name, _refusing_device_arrays(getattr(module, name), f"{prefix[module]}.{name}"))
            for module, names in HOST_ONLY.items() for name in names]
