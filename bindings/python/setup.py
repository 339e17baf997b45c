"""Build gatednet._core against libgatednet.so and bundle the library into the package.

Where the library comes from:
  GATEDNET_LIB_DIR=<dir>  use <dir>/libgatednet.so as built already (no Swift build);
  otherwise               run `swift build -c release -Xswiftc -static-stdlib` in the repository
                          root (scratch path GATEDNET_SCRATCH_PATH, default <root>/.build) and use
                          <scratch>/release/libgatednet.so.
The repository root is GATEDNET_ROOT if set, else the nearest parent of this file holding
include/gatednet.h and Package.swift. The header comes from GATEDNET_INCLUDE_DIR or
<root>/include. The library is copied next to the extension, which finds it through an
$ORIGIN rpath, so the installed package needs no LD_LIBRARY_PATH.
"""
import os
import shutil
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).resolve().parent


def repo_root():
    env = os.environ.get("GATEDNET_ROOT")
    if env:
        return Path(env).resolve()
    for parent in [HERE, *HERE.parents]:
        if (parent / "include" / "gatednet.h").is_file() and (parent / "Package.swift").is_file():
            return parent
    return None


def include_dir():
    env = os.environ.get("GATEDNET_INCLUDE_DIR")
    if env:
        return env
    root = repo_root()
    if root is None:
        raise SystemExit("gatednet: cannot find include/gatednet.h; set GATEDNET_ROOT or GATEDNET_INCLUDE_DIR")
    return str(root / "include")


def library_dir():
    env = os.environ.get("GATEDNET_LIB_DIR")
    if env:
        lib = Path(env).resolve()
        if not (lib / "libgatednet.so").is_file():
            raise SystemExit(f"gatednet: GATEDNET_LIB_DIR={env} holds no libgatednet.so")
        return lib
    root = repo_root()
    if root is None:
        raise SystemExit("gatednet: cannot find the Swift package; set GATEDNET_ROOT or GATEDNET_LIB_DIR")
    scratch = Path(os.environ.get("GATEDNET_SCRATCH_PATH", root / ".build"))
    cmd = ["swift", "build", "-c", "release", "-Xswiftc", "-static-stdlib", "--scratch-path", str(scratch)]
    print("gatednet: building libgatednet:", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=root, check=True)
    return scratch / "release"


def without_foreign_rpaths(command):
    """The link command without the -rpath entries the interpreter's own build put in LDSHARED
    (e.g. pyenv's prefix), so the extension's RUNPATH is $ORIGIN alone."""
    kept, skip = [], False
    for arg in command:
        if skip:
            skip = False
        elif arg in ("-rpath", "-Wl,-rpath"):
            skip = True
        elif not arg.startswith(("-Wl,-rpath,", "-Wl,-rpath=", "-Wl,-R")):
            kept.append(arg)
    return kept


class BuildExt(build_ext):
    def build_extensions(self):
        self.compiler.linker_so = without_foreign_rpaths(self.compiler.linker_so)
        super().build_extensions()

    def build_extension(self, ext):
        lib = library_dir()
        ext.library_dirs = [str(lib)]
        ext.include_dirs = [include_dir()]
        ext.depends = list(ext.depends) + [str(Path(include_dir()) / "gatednet.h")]
        dest = Path(self.get_ext_fullpath(ext.name)).parent
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib / "libgatednet.so", dest / "libgatednet.so")
        super().build_extension(ext)


core = Extension(
    "gatednet._core",
    sources=[f"src/{name}.c" for name in ("module", "common", "network", "buffer", "args", "kernels", "conv_network")],
    depends=["src/gatednet_py.h"],
    libraries=["gatednet"],
    extra_compile_args=["-std=c11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter",
                        "-Wno-missing-field-initializers", "-Wno-cast-function-type"],
    extra_link_args=["-Wl,-rpath,$ORIGIN"],
)

setup(ext_modules=[core], cmdclass={"build_ext": BuildExt})
