"""Compile the explorer's WebAssembly kernel: src/bptt/explore/kernels.wat -> kernels.wasm.

    python scripts/build_wasm.py          # needs wasmtime (in the test extra)

The page embeds kernels.wasm; tests/test_explore.py checks that it is this source compiled.
"""
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "bptt" / "explore"


def compiled() -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm((SRC / "kernels.wat").read_text(encoding="utf-8")))


if __name__ == "__main__":
    (SRC / "kernels.wasm").write_bytes(compiled())
    print(f"wrote {SRC / 'kernels.wasm'} ({len(compiled())} bytes)")
